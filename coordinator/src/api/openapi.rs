//! The failure statuses every operation of the OpenAPI document declares, derived in one
//! place from the route × role table ([`super::roles::ROUTES`]) and the operation's own
//! inputs, so the document tells the truth about what the access layer and the error
//! mapping can answer, without 37 hand-kept lists. Handler-specific statuses (404 of a
//! missing segment, 409 of a conflict, …) stay on each operation.

use axum::http::Method;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{
    Content, HeaderBuilder, Object, OpenApi, Ref, RefOr, Response, ResponseBuilder, Type,
};
use utoipa::Modify;

use super::roles::{access_of, Access};

/// Adds the common failure responses to every operation ([`utoipa::Modify`]).
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                (Method::GET, item.get.as_mut()),
                (Method::PUT, item.put.as_mut()),
                (Method::POST, item.post.as_mut()),
                (Method::DELETE, item.delete.as_mut()),
                (Method::PATCH, item.patch.as_mut()),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    declare(op, access_of(&method, path));
                }
            }
        }
    }
}

/// What one operation can fail with, besides what its handler declares.
fn declare(op: &mut Operation, access: Access) {
    let has = |place: ParameterIn| {
        op.parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == place)
    };
    let (query, path, body) = (
        has(ParameterIn::Query),
        has(ParameterIn::Path),
        op.request_body.is_some(),
    );
    // A 403 has a JSON body when a handler explains the refusal and none when the role
    // check refuses, so it declares no content (either is then conformant).
    if let Some(RefOr::T(r)) = op.responses.responses.get_mut("403") {
        r.content.clear();
    }
    let mut add = |status: &str, response: Response| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert(RefOr::T(response));
    };
    if query || path || body {
        add(
            "400",
            error("The request is malformed or a value is invalid; the body says which."),
        );
    }
    if body {
        add(
            "413",
            error("The request body is larger than this route accepts."),
        );
    }
    if path {
        add("404", error("No such object."));
    }
    if access != Access::Public {
        add(
            "401",
            bare("No credential, or one that is wrong, expired or revoked (no body; a revoked node's credential answers with the `node_revoked` code)."),
        );
        add(
            "429",
            throttled("Too many failed attempts from this address, or a per-node limit reached (open netmap polls, flow reports); try again after `Retry-After` seconds."),
        );
        add(
            "503",
            error("The coordinator's database could not answer; try again."),
        );
    }
    if matches!(
        access,
        Access::Key(_)
            | Access::GlobalKey(_)
            | Access::KeyOrNode(_)
            | Access::Node
            | Access::Enroll
    ) {
        add(
            "403",
            bare("The credential is valid but its role or scope does not allow this (no body), or the join token cannot be used (a JSON error body says why)."),
        );
    }
}

fn error_content() -> Content {
    Content::new(Some(Ref::from_schema_name("ErrorBody")))
}

/// A failure with the usual JSON error body.
fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
        .build()
}

/// A failure with no body.
fn bare(description: &str) -> Response {
    ResponseBuilder::new().description(description).build()
}

/// 429: the error body and a `Retry-After` header.
fn throttled(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Object::with_type(Type::Integer))
                .description(Some("seconds"))
                .build(),
        )
        .build()
}
