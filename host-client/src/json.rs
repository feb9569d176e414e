//! JSON views of evidence frames for reports, expectations and `decode --json`.
//!
//! A frame becomes `{"kind", "boot_id", "seq", "cmd", "body"}` where `body` holds the
//! fields of the frame's struct (serde's derive, without the enum wrapper). Byte arrays
//! that people read in another notation are rendered that way: MAC addresses
//! (`mac`, `src_mac`, `dst_mac`) as `"aa:bb:cc:dd:ee:ff"`, IPv4 addresses (`*_ip`) as
//! dotted quads, `sha256` and `first_bytes` as lowercase hex. Boot ids are 16-digit hex
//! strings (JSON numbers lose precision above 2^53).

use evidence::Frame;
use serde::Serializer;
use serde_json::{Map, Value};

/// A boot id as text: 16 lowercase hex digits.
pub fn boot_id_text(id: u64) -> String {
    format!("{id:016x}")
}

/// serde helper: serialize a boot id as [`boot_id_text`].
pub fn boot_id<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&boot_id_text(*id))
}

/// serde helper: an optional boot id.
pub fn opt_boot_id<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&boot_id_text(*id)),
        None => s.serialize_none(),
    }
}

/// The body's fields as a JSON object (the enum wrapper removed, readable byte arrays).
pub fn body_json(body: &evidence::Body) -> Value {
    let tagged = serde_json::to_value(body).unwrap_or(Value::Null);
    let inner = match tagged {
        Value::Object(map) if map.len() == 1 => map.into_iter().next().map(|(_, v)| v),
        other => Some(other),
    };
    let mut inner = inner.unwrap_or(Value::Null);
    prettify(&mut inner);
    inner
}

/// The whole frame as JSON, with its kind.
pub fn frame_json(frame: &Frame) -> Value {
    let mut map = Map::new();
    map.insert("kind".into(), frame.body.kind().into());
    map.insert("boot_id".into(), boot_id_text(frame.boot_id).into());
    map.insert("seq".into(), frame.seq.into());
    map.insert("cmd".into(), frame.cmd.into());
    map.insert("body".into(), body_json(&frame.body));
    Value::Object(map)
}

fn prettify(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if let Some(text) = readable_bytes(key, field) {
                    *field = Value::String(text);
                } else {
                    prettify(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(prettify),
        _ => {}
    }
    // net.lease's DNS list: every element is an IPv4 address.
    if let Value::Object(map) = value {
        if let Some(Value::Array(items)) = map.get_mut("dns") {
            for item in items.iter_mut() {
                if let Some(text) = readable_bytes("dns_ip", item) {
                    *item = Value::String(text);
                }
            }
        }
    }
}

fn readable_bytes(key: &str, value: &Value) -> Option<String> {
    let items = value.as_array()?;
    let bytes: Vec<u8> = items
        .iter()
        .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect::<Option<_>>()?;
    let hex = |sep: &str| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(sep)
    };
    match key {
        "mac" | "src_mac" | "dst_mac" | "next_hop_mac" if bytes.len() == 6 => Some(hex(":")),
        // net.* frames name their IPv4 addresses by role.
        "address" | "router" | "gateway" | "server_id" | "target" | "next_hop" | "destination"
            if bytes.len() == 4 =>
        {
            Some(
                bytes
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            )
        }
        k if k.ends_with("_ip") && bytes.len() == 4 => Some(
            bytes
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join("."),
        ),
        "sha256" | "first_bytes" => Some(hex("")),
        _ => None,
    }
}

/// A one-line summary of a frame: `[frame 12 nvme.read ok ...]` style.
pub fn frame_summary(frame: &Frame) -> String {
    use evidence::{Body, Outcome};
    let detail = match &frame.body {
        Body::CommandResult(r) => match &r.outcome {
            Outcome::Ok => format!("ok {}us", r.elapsed_us),
            Outcome::Error { code, message } => format!("error {code}: {message}"),
        },
        Body::CommandStart(s) => format!("{:?}", s.line),
        other => compact_fields(&body_json(other)),
    };
    let mut text = format!(
        "[frame {} cmd {} {} {detail}",
        frame.seq,
        frame.cmd,
        frame.body.kind()
    );
    if text.chars().count() > 150 {
        text = text.chars().take(147).collect::<String>() + "...";
    }
    text.push(']');
    text
}

fn compact_fields(value: &Value) -> String {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s:?}"),
                Value::Array(items) if items.len() > 4 => format!("{k}=[{} items]", items.len()),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::{Body, CommandResult, GvnicRx, Outcome};

    #[test]
    fn frame_json_has_kind_and_flat_body() {
        let frame = Frame {
            boot_id: 0xdead_beef_0000_0001,
            seq: 3,
            cmd: 2,
            body: Body::CommandResult(CommandResult {
                outcome: Outcome::Error {
                    code: "unknown-command".into(),
                    message: "no such command".into(),
                },
                elapsed_us: 5,
            }),
        };
        let v = frame_json(&frame);
        assert_eq!(v["kind"], "command.result");
        assert_eq!(v["boot_id"], "deadbeef00000001");
        assert_eq!(v["body"]["outcome"]["Error"]["code"], "unknown-command");
        assert_eq!(v["body"]["elapsed_us"], 5);
    }

    #[test]
    fn macs_and_ips_are_readable() {
        let body = Body::GvnicRx(GvnicRx {
            bytes: 342,
            kind: "dhcp-offer".into(),
            src_mac: [0x42, 0x01, 0x0a, 0, 0, 1],
            dst_mac: [0xff; 6],
            ethertype: 0x0800,
            xid: 1,
            offered_ip: [10, 128, 0, 5],
            server_ip: [169, 254, 169, 254],
            lease_secs: 86400,
            elapsed_us: 1,
        });
        let v = body_json(&body);
        assert_eq!(v["src_mac"], "42:01:0a:00:00:01");
        assert_eq!(v["offered_ip"], "10.128.0.5");
        let lease = body_json(&evidence::Body::NetLease(evidence::NetLease {
            mac: [0x42, 1, 10, 128, 0, 2],
            address: [10, 128, 0, 2],
            prefix_len: 32,
            interface_prefix_len: 30,
            router: [10, 128, 0, 1],
            gateway: [10, 128, 0, 1],
            dns: vec![[169, 254, 169, 254]],
            mtu: 1460,
            lease_secs: 86400,
            server_id: [169, 254, 169, 254],
            classless_routes: vec![evidence::NetRoute {
                destination: [0; 4],
                prefix_len: 0,
                gateway: [10, 128, 0, 1],
            }],
            elapsed_us: 1,
            wire: vec![],
        }));
        assert_eq!(lease["address"], "10.128.0.2");
        assert_eq!(lease["dns"][0], "169.254.169.254");
        assert_eq!(lease["classless_routes"][0]["gateway"], "10.128.0.1");
        assert_eq!(lease["mac"], "42:01:0a:80:00:02");
        assert_eq!(v["ethertype"], 2048);
    }
}
