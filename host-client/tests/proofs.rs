//! The shipped command files parse, and use only real frame kinds.

use host_client::script::{parse_script, Check};

const KINDS: &[&str] = &[
    "banner",
    "command.start",
    "command.result",
    "pci.function",
    "bar.map",
    "dma.ledger",
    "nvme.identify",
    "nvme.namespace",
    "nvme.read",
    "gvnic.describe",
    "gvnic.tx",
    "gvnic.rx",
    "teardown.step",
    "fault",
    "facts",
];

#[test]
fn proofs_parse_and_name_known_kinds() {
    let dir = host_client::qemu::workspace_root().join("proofs");
    for name in ["nvme.bringup", "gvnic.bringup", "full.bringup"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let script = parse_script(&text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(script.steps.len() >= 3, "{name}");
        for exp in script.steps.iter().flat_map(|s| &s.expectations) {
            let path = match &exp.check {
                Check::Field { path, .. } => path.as_str(),
                Check::Count { kind, .. } => kind.as_str(),
                Check::Text { .. } => continue,
            };
            assert!(
                KINDS
                    .iter()
                    .any(|k| path == *k || path.starts_with(&format!("{k}."))),
                "{name} line {}: unknown kind in {path}",
                exp.line_no
            );
        }
    }
}
