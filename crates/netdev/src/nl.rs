//! Shared rtnetlink plumbing: connecting inside a namespace, finding links, mapping errors.

use std::io;

use futures_util::TryStreamExt;
use rtnetlink::Handle;

use crate::NetdevError;

/// Opens a netlink socket in the calling thread's namespace and spawns its connection on
/// the current runtime (the namespace job's own current-thread runtime).
pub(crate) fn connect(netns: &str) -> Result<Handle, NetdevError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| NetdevError::Netlink {
            op: "open a netlink socket".to_owned(),
            netns: netns.to_owned(),
            source,
        })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The kernel's errno for a failed request, or a generic I/O error.
pub(crate) fn to_io(error: rtnetlink::Error) -> io::Error {
    match error {
        rtnetlink::Error::NetlinkError(message) if message.raw_code() != 0 => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// Wraps a netlink failure with what was being done and where.
pub(crate) fn failed(op: impl Into<String>, netns: &str, error: rtnetlink::Error) -> NetdevError {
    NetdevError::Netlink {
        op: op.into(),
        netns: netns.to_owned(),
        source: to_io(error),
    }
}

/// Whether a netlink error means "no such device".
pub(crate) fn is_no_such_device(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message)
        if message.raw_code().abs() == libc::ENODEV)
}

/// The index of link `name`, or `None` when there is no such link.
pub(crate) async fn link_index(
    handle: &Handle,
    name: &str,
    netns: &str,
) -> Result<Option<u32>, NetdevError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|link| link.header.index)),
        Err(e) if is_no_such_device(&e) => Ok(None),
        Err(e) => Err(failed(format!("look up interface {name}"), netns, e)),
    }
}
