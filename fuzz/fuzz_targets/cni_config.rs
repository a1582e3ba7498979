//! Any bytes as the CNI network config on stdin: the strict parser answers a config or a
//! CNI error with a code, never a panic; what it accepts has a valid segment name and a
//! supported version; the lenient parser (DEL) never fails and agrees with the strict one
//! on the segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segwire_cni::config::{output_version, parse, parse_lenient};
use segwire_cni::result::SUPPORTED_VERSIONS;
use segwire_proto::names::validate_segment_name;

fuzz_target!(|data: &[u8]| {
    let _ = output_version(data);
    let lenient = parse_lenient(data);
    match parse(data) {
        Ok(conf) => {
            assert!(validate_segment_name(&conf.segment).is_ok());
            assert!(SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()));
            assert_eq!(lenient.segment.as_deref(), Some(conf.segment.as_str()));
            let _ = conf.valid_containers();
        }
        Err(e) => assert!(e.code > 0, "an error carries a CNI code"),
    }
});
