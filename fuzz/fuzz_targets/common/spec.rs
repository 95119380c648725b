//! One connection as the engine targets configure it: PSK "fuzz", the
//! gateways' IPv4 addresses as identities, a /24 on each side.

use ikeda_crypto::ike::{parse_esp_proposals, parse_ike_proposals};
use ikeda_crypto::SecretBytes;
use ikeda_ike::{ConnSpec, Timers};
use ikeda_wire::ikev2::{IdPayload, TsRange};

/// The /24 that begins at `a`.
pub fn net(a: [u8; 4]) -> TsRange {
    TsRange::addresses(a.into(), [a[0], a[1], a[2], 255].into())
}

/// Connection `name` from `local` to `remote`, between the /24s at `l` and `r`.
pub fn spec(
    name: &str,
    (local, remote): ([u8; 4], [u8; 4]),
    (l, r): ([u8; 4], [u8; 4]),
    ike: &str,
    esp: &str,
) -> ConnSpec {
    ConnSpec {
        name: name.into(),
        local: local.into(),
        remote: remote.into(),
        local_id: IdPayload::ipv4(local.into()),
        remote_id: IdPayload::ipv4(remote.into()),
        psk: SecretBytes::new(b"fuzz".to_vec()),
        ike_proposals: parse_ike_proposals(ike).unwrap(),
        esp_proposals: parse_esp_proposals(esp).unwrap(),
        local_ts: vec![net(l)],
        remote_ts: vec![net(r)],
        ts_pairs: Vec::new(),
        timers: Timers::default(),
        force_encap: false,
        children: Vec::new(),
    }
}
