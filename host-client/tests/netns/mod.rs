//! A GCE-shaped network inside a network namespace the test makes itself, behind the TAP
//! interface the gVNIC model writes to: a real DHCP server (dnsmasq) leasing a /32 with
//! router 10.128.0.1, option 121 and MTU 1460; Linux itself answering ARP and ping for the
//! router; and an HTTP server on 169.254.169.254 answering the metadata paths only with
//! `Metadata-Flavor: Google` (403 without, as GCE does).
//!
//! Nothing links the namespace to the host's network: the TAP is moved into it right after
//! the model opened it (an open TAP keeps working across the move) and before it is up or
//! has an address. [`TestNet`]'s Drop kills the servers and deletes the namespace (and the
//! TAP with it), also when the test panics.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ROUTER: [u8; 4] = [10, 128, 0, 1];
pub const GUEST: [u8; 4] = [10, 128, 0, 2];
pub const LEASE_SECS: u32 = 86400;
pub const MTU: u16 = 1460;

/// The metadata server: a Python http.server handler (stdlib only). Besides the metadata
/// paths: `/test/big` (100000 bytes, several TCP windows), `/test/slow` (headers never
/// come), `/test/reset` (the connection is reset: SO_LINGER 0, then close).
const METADATA_SERVER: &str = r#"
import http.server, json, socket, struct, sys, time
paths = json.load(open(sys.argv[1]))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/test/slow":
            time.sleep(30)
            return
        if self.path == "/test/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if self.path == "/test/big":
            body = bytes(i * 7 % 251 for i in range(100000))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get("Metadata-Flavor") != "Google":
            code, body = 403, b"Missing required header: Metadata-Flavor\n"
        elif self.path in paths:
            code, body = 200, paths[self.path].encode()
        else:
            code, body = 404, b"not found\n"
        self.send_response(code)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", "application/text")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass
s = S(("169.254.169.254", 80), H)
print("ready", flush=True)
s.serve_forever()
"#;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub struct TestNet {
    pub ns: String,
    pub tap: String,
    pub dir: tempfile::TempDir,
    /// What the metadata server serves: path -> body.
    pub metadata: Vec<(String, String)>,
    children: Vec<Child>,
}

impl TestNet {
    /// Makes the namespace (empty but for lo) and picks a TAP name for the model to open.
    /// Fails loudly where namespaces cannot be made: these tests never pass silently.
    pub fn prepare(tag: &str) -> TestNet {
        let pid = std::process::id();
        let ns = format!("bu-net-{pid}-{tag}");
        let tap = format!("bu{}{tag}", pid % 100_000);
        assert!(tap.len() < 16, "{tap}");
        if let Err(e) = ip(&["netns", "add", &ns]) {
            panic!(
                "NETWORK NAMESPACES CANNOT BE MADE HERE ({e}); this test needs root (CAP_SYS_ADMIN \
                 and CAP_NET_ADMIN), iproute2 and /dev/net/tun. It fails rather than pass silently."
            );
        }
        let instance_id: u64 = 1_000_000_000_000_000_000 + u64::from(pid) * 7919;
        let net = TestNet {
            ns,
            tap,
            dir: tempfile::tempdir().expect("tempdir"),
            metadata: vec![
                (
                    "/computeMetadata/v1/instance/id".into(),
                    instance_id.to_string(),
                ),
                (
                    "/computeMetadata/v1/instance/zone".into(),
                    "projects/123456789012/zones/us-central1-a".into(),
                ),
            ],
            children: Vec::new(),
        };
        net.ns_ip(&["link", "set", "lo", "up"]).expect("lo up");
        net
    }

    fn ns_ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    pub fn dnsmasq_log(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.log")
    }

    /// After the model opened the TAP: move it into the namespace, give the namespace the
    /// router's and the metadata server's addresses, start dnsmasq and the HTTP server.
    pub fn start(&mut self) {
        // The model thread opens the TAP before QEMU starts; wait until the kernel shows it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ip(&["link", "show", "dev", &self.tap]).is_err() {
            assert!(
                Instant::now() < deadline,
                "the model never opened TAP {}",
                self.tap
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ip(&["link", "set", "dev", &self.tap, "netns", &self.ns]).expect("TAP into the namespace");
        self.ns_ip(&["addr", "add", "10.128.0.1/20", "dev", &self.tap])
            .expect("router address");
        self.ns_ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"])
            .expect("metadata address");
        self.ns_ip(&["link", "set", "dev", &self.tap, "mtu", "1460", "up"])
            .expect("TAP up");

        let dir = self.dir.path();
        let lease_file = dir.join("leases");
        let iface = format!("--interface={}", self.tap);
        let log = format!("--log-facility={}", self.dnsmasq_log().display());
        let leases = format!("--dhcp-leasefile={}", lease_file.display());
        let lease_time = format!("--dhcp-range=10.128.0.2,10.128.0.2,255.255.240.0,{LEASE_SECS}");
        let dnsmasq = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
            ])
            .args([
                "--no-hosts",
                "--port=0",
                "--bind-interfaces",
                "--except-interface=lo",
            ])
            .args([
                &iface,
                &log,
                &leases,
                &lease_time,
                "--pid-file=",
                "--user=root",
            ])
            .args(["--log-dhcp", "--dhcp-authoritative", "--no-ping"])
            // GCE's shape (platform-notes §5): a /32, the router, DNS, MTU, classless routes.
            .args([
                "--dhcp-option=1,255.255.255.255",
                "--dhcp-option=3,10.128.0.1",
            ])
            .args(["--dhcp-option=6,169.254.169.254", "--dhcp-option=26,1460"])
            .arg("--dhcp-option=121,10.128.0.1/32,0.0.0.0,0.0.0.0/0,10.128.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq runs (apt-get install dnsmasq-base)");
        self.children.push(dnsmasq);

        let paths = dir.join("metadata.json");
        let json = format!(
            "{{{}}}",
            self.metadata
                .iter()
                .map(|(p, b)| format!("{p:?}: {b:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::fs::write(&paths, json).unwrap();
        let script = dir.join("metadata.py");
        std::fs::write(&script, METADATA_SERVER).unwrap();
        let mut http = Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3"])
            .arg(&script)
            .arg(&paths)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = http.stdout.take().unwrap();
        self.children.push(http);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the metadata server did not start");
        // dnsmasq is up once it logged its start (or died: say why).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(self.dnsmasq_log()).unwrap_or_default();
            if log.contains("DHCP, IP range") {
                break;
            }
            if let Ok(Some(status)) = self.children[0].try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.children[0].stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("dnsmasq exited ({status}): {err}\n{log}");
            }
            assert!(Instant::now() < deadline, "dnsmasq did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The metadata body for a path below /computeMetadata/v1/.
    pub fn metadata_body(&self, path: &str) -> &str {
        let full = format!("/computeMetadata/v1/{path}");
        &self.metadata.iter().find(|(p, _)| *p == full).unwrap().1
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = ip(&["-n", &self.ns, "link", "del", &self.tap]);
        let _ = ip(&["netns", "del", &self.ns]);
        // Still in the root namespace if the test failed before moving it.
        let _ = ip(&["link", "del", &self.tap]);
    }
}
