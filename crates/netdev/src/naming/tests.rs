use super::*;

#[test]
fn fnv1a32_matches_reference_vectors() {
    // Reference values of 32-bit FNV-1a.
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
}

#[test]
fn interface_name_table() {
    let cases: &[(&str, &str)] = &[
        ("db", "sw-db"),
        ("web", "sw-web"),
        ("a", "sw-a"),
        // exactly 12 bytes: used as is
        ("payments-eu1", "sw-payments-eu1"),
        // 13 bytes and more: 7 bytes, '-', 4 hex digits of the hash of the whole name
        ("payments-eu12", "sw-payment-7038"),
        ("payments-europe-west", "sw-payment-ebb2"),
    ];
    for (segment, want) in cases {
        assert_eq!(&interface_name(segment), want, "segment {segment:?}");
    }
}

#[test]
fn long_names_keep_the_documented_shape() {
    // Expected names written out: the hash digits were computed outside this crate (FNV-1a
    // 32 of the whole name, folded to 16 bits), so a change to the scheme shows here.
    let cases: &[(&str, &str)] = &[
        ("payments-eu12", "sw-payment-7038"),
        ("a-very-long-segment-name-indeed", "sw-a-very--3497"),
        ("0123456789abc", "sw-0123456-3480"),
    ];
    for (segment, want) in cases {
        let name = interface_name(segment);
        assert_eq!(name.len(), MAX_INTERFACE_NAME_LEN, "{name}");
        assert_eq!(&name, want, "segment {segment:?}");
    }
}

#[test]
fn names_fit_linux_and_are_deterministic() {
    for len in 0..40 {
        let segment: String = "abcdefghijklmnopqrstuvwxyz0123456789-xyz"
            .chars()
            .take(len)
            .collect();
        let name = interface_name(&segment);
        assert!(name.len() <= MAX_INTERFACE_NAME_LEN, "{name} too long");
        assert_eq!(name, interface_name(&segment), "not deterministic");
        if !segment.is_empty() {
            validate_interface_name(&name).expect("valid name");
        }
    }
}

#[test]
fn long_names_sharing_a_prefix_differ() {
    assert_ne!(
        interface_name("payments-europe-west"),
        interface_name("payments-europe-east")
    );
}

#[test]
fn multibyte_cut_stays_on_a_char_boundary() {
    let name = interface_name("ééééééééééééé"); // 13 chars, 26 bytes
    assert!(name.len() <= MAX_INTERFACE_NAME_LEN);
    assert_eq!(name, "sw-ééé-557d");
}

#[test]
fn validate_interface_name_rejects_bad_names() {
    for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-bytes-xx"] {
        assert!(
            matches!(
                validate_interface_name(bad),
                Err(NetdevError::InvalidInterfaceName { .. })
            ),
            "{bad:?} accepted"
        );
    }
    for good in ["sw-db", "sw-payment-7038", "lo"] {
        validate_interface_name(good).expect(good);
    }
}
