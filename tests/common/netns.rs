//! A Calico-shaped lab on this machine's real Linux dataplane, for end-to-end tests of the
//! collector now and of the analyzer later.
//!
//! `Lab::setup` creates network namespaces of its own (names unique per process and lab): one
//! "node" namespace and one per pod, joined by veth pairs whose node-side ends are named as
//! Calico names them (`cali` + the first 11 hex digits of sha1("<namespace>.<pod>")), with
//! Calico's routing: a /32 route per pod on the node side, each pod routed through
//! 169.254.1.1, which the node side answers (proxy_arp plus static neighbours, MAC
//! ee:ee:ee:ee:ee:ee), and ip_forward on in the node namespace. It loads an iptables-restore
//! file and an ipset restore file into the node namespace, starts an echo server in each pod,
//! and sends real TCP and UDP flows (`try_tcp`, `try_udp`), so packet counters and conntrack
//! entries are real. `collect_node` and `collect_cluster` run the collector against it; `Bundle`
//! reads what it wrote. Dropping the `Lab` kills its servers and deletes every namespace it
//! made, also when a test panics; namespaces left by a killed earlier run are removed at the
//! next setup.
//!
//! It is not Calico: no Felix runs, so the ruleset is exactly what the spec's files say.
//! Needs root, `ip`, `iptables-restore`, `ipset` and `python3`; `preflight` says what is
//! missing so that a test can skip. Traffic stays on the addresses inside the lab.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sha1::{Digest, Sha1};

/// Prefix of every namespace a lab creates: `<PREFIX><pid>x<lab number>-<role>`.
const PREFIX: &str = "csnap";
/// The MAC Calico gives the host side of every workload veth.
const HOST_SIDE_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The gateway address Calico's CNI plugin routes pods through.
const POD_GATEWAY: &str = "169.254.1.1";
/// How long a probe flow waits for its echo.
const FLOW_TIMEOUT_S: &str = "1.5";

static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `testdata/e2e`: fixtures, stand-ins and helper scripts of the lab.
pub fn e2e_dir() -> PathBuf {
    repo_dir().join("testdata/e2e")
}

pub fn collector_script() -> PathBuf {
    repo_dir().join("collector/calico-collect.sh")
}

/// Calico's host-side veth name for a Kubernetes pod (libcalico-go's
/// `VethNameForWorkload` with the default `cali` prefix).
pub fn veth_name(namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One pod of the lab.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// Ports the pod's echo server listens on.
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
}

impl PodSpec {
    /// A pod serving TCP 8080 and UDP 5353.
    pub fn new(namespace: &str, name: &str, ip: Ipv4Addr) -> PodSpec {
        PodSpec {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ip,
            tcp_ports: vec![8080],
            udp_ports: vec![5353],
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The node-side interface name.
    pub fn iface(&self) -> String {
        veth_name(&self.namespace, &self.name)
    }

    /// A locally administered MAC derived from the IP, as some CNIs do.
    fn mac(&self) -> String {
        let o = self.ip.octets();
        format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// The node name the collector records (the namespace has the machine's hostname).
    pub node_name: String,
    pub pods: Vec<PodSpec>,
    /// Loaded with `ipset restore`, before the rules that use the sets.
    pub ipset_restore: Option<PathBuf>,
    /// Loaded with `iptables-restore`.
    pub iptables_restore: Option<PathBuf>,
}

impl LabSpec {
    /// The lab described in `testdata/e2e/README.md`: four pods, the Felix-shaped ruleset and
    /// IP sets of `testdata/e2e`, with its one deliberate fault.
    pub fn e2e() -> LabSpec {
        let ip = |last| Ipv4Addr::new(10, 65, 0, last);
        LabSpec {
            node_name: "e2e-node".to_string(),
            pods: vec![
                PodSpec::new("shop", "frontend-a", ip(11)),
                PodSpec::new("shop", "frontend-b", ip(12)),
                PodSpec::new("shop", "backend", ip(21)),
                PodSpec::new("ops", "probe", ip(31)),
            ],
            ipset_restore: Some(e2e_dir().join("ipset-restore.txt")),
            iptables_restore: Some(e2e_dir().join("iptables-restore.txt")),
        }
    }
}

/// `Ok` when this process can build a lab; otherwise why not (for a skip message).
pub fn preflight() -> Result<(), String> {
    if !is_root() {
        return Err("needs root (network namespaces, iptables, ipset)".to_string());
    }
    let missing: Vec<&str> = ["ip", "iptables-restore", "ipset", "python3"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing tools: {}", missing.join(", ")));
    }
    // Root in a container may still lack the right to make namespaces.
    let probe = format!("{PREFIX}{}probe", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        return Err("cannot create network namespaces here".to_string());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    Ok(())
}

fn is_root() -> bool {
    // Effective uid: the second field of "Uid:" in /proc/self/status.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The program `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A pod as built.
#[derive(Clone, Debug)]
pub struct LabPod {
    pub spec: PodSpec,
    pub netns: String,
    pub iface: String,
}

/// A running lab. Drop tears it down.
pub struct Lab {
    spec: LabSpec,
    node_ns: String,
    pods: Vec<LabPod>,
    servers: Vec<Child>,
    /// Namespaces created so far, in creation order.
    namespaces: Vec<String>,
    ip_bin: PathBuf,
}

impl Lab {
    pub fn setup(spec: &LabSpec) -> Result<Lab> {
        remove_stale_namespaces();
        let ip_bin = which("ip").ok_or_else(|| anyhow!("ip not found"))?;
        let tag = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            LAB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = Lab {
            spec: spec.clone(),
            node_ns: format!("{tag}-node"),
            pods: Vec::new(),
            servers: Vec::new(),
            namespaces: Vec::new(),
            ip_bin,
        };
        // On error `lab` is dropped here, which removes what was built.
        lab.build(&tag).context("building the lab")?;
        Ok(lab)
    }

    fn build(&mut self, tag: &str) -> Result<()> {
        let node = self.node_ns.clone();
        self.add_netns(&node)?;
        self.ip(&["-n", &node, "link", "set", "lo", "up"])?;
        self.write_sysctl(&node, "net/ipv4/ip_forward", "1")?;

        for (i, spec) in self.spec.pods.clone().into_iter().enumerate() {
            let ns = format!("{tag}-p{i}");
            let iface = spec.iface();
            let ip = spec.ip.to_string();
            self.add_netns(&ns)?;
            self.ip(&[
                "-n", &node, "link", "add", &iface, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            // Node side, as Calico's CNI plugin and Felix leave it.
            self.ip(&["-n", &node, "link", "set", &iface, "address", HOST_SIDE_MAC])?;
            self.ip(&["-n", &node, "link", "set", &iface, "up"])?;
            self.write_sysctl(&node, &format!("net/ipv4/conf/{iface}/proxy_arp"), "1")?;
            self.ip(&[
                "-n",
                &node,
                "route",
                "add",
                &format!("{ip}/32"),
                "dev",
                &iface,
                "scope",
                "link",
            ])?;
            // The node namespace has no address of its own to ARP from; a static neighbour
            // makes delivery to the pod independent of that.
            self.ip(&[
                "-n",
                &node,
                "neigh",
                "replace",
                &ip,
                "lladdr",
                &spec.mac(),
                "dev",
                &iface,
                "nud",
                "permanent",
            ])?;
            // Pod side.
            self.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            self.ip(&["-n", &ns, "link", "set", "eth0", "address", &spec.mac()])?;
            self.ip(&["-n", &ns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
            self.ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            self.ip(&[
                "-n",
                &ns,
                "route",
                "add",
                POD_GATEWAY,
                "dev",
                "eth0",
                "scope",
                "link",
            ])?;
            self.ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                POD_GATEWAY,
                "dev",
                "eth0",
            ])?;
            self.ip(&[
                "-n",
                &ns,
                "neigh",
                "replace",
                POD_GATEWAY,
                "lladdr",
                HOST_SIDE_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
            self.pods.push(LabPod {
                spec,
                netns: ns,
                iface,
            });
        }

        if let Some(f) = self.spec.ipset_restore.clone() {
            self.restore_into_node(&["ipset", "restore"], &f)?;
        }
        if let Some(f) = self.spec.iptables_restore.clone() {
            self.restore_into_node(&["iptables-restore"], &f)?;
        }
        for i in 0..self.pods.len() {
            self.start_server(i)?;
        }
        Ok(())
    }

    fn add_netns(&mut self, name: &str) -> Result<()> {
        self.ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        Ok(())
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new(&self.ip_bin).args(args)).map(|_| ())
    }

    fn in_netns(&self, ns: &str) -> Command {
        let mut c = Command::new(&self.ip_bin);
        c.args(["netns", "exec", ns]);
        c
    }

    fn write_sysctl(&self, ns: &str, key_path: &str, value: &str) -> Result<()> {
        // /proc/sys/net belongs to the namespace of the process that opens it.
        run(self
            .in_netns(ns)
            .args(["sh", "-c", &format!("echo {value} > /proc/sys/{key_path}")]))
        .map(|_| ())
    }

    fn restore_into_node(&self, argv: &[&str], file: &Path) -> Result<()> {
        let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
        run(self.in_netns(&self.node_ns).args(argv).stdin(input))
            .with_context(|| format!("{} < {}", argv.join(" "), file.display()))
            .map(|_| ())
    }

    fn start_server(&mut self, pod: usize) -> Result<()> {
        let p = &self.pods[pod];
        let mut ports: Vec<String> = p
            .spec
            .tcp_ports
            .iter()
            .map(|n| format!("tcp:{n}"))
            .collect();
        ports.extend(p.spec.udp_ports.iter().map(|n| format!("udp:{n}")));
        if ports.is_empty() {
            return Ok(());
        }
        let mut child = self
            .in_netns(&p.netns)
            .arg("python3")
            .arg("-u")
            .arg(e2e_dir().join("lab/echo-server.py"))
            .args(&ports)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting an echo server")?;
        let stdout = child.stdout.take();
        let key = p.spec.key();
        self.servers.push(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.trim() == "ready" => Ok(()),
            Ok(line) => bail!("echo server in {key} did not start (said {line:?})"),
            Err(_) => bail!("echo server in {key} did not start in time"),
        }
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    pub fn node_netns(&self) -> &str {
        &self.node_ns
    }

    pub fn node_name(&self) -> &str {
        &self.spec.node_name
    }

    pub fn pods(&self) -> &[LabPod] {
        &self.pods
    }

    /// A pod by `namespace/name`, or by bare name when that is unique. Panics when unknown:
    /// a test naming a pod that is not in its spec is a bug in the test.
    pub fn pod(&self, key: &str) -> &LabPod {
        let hits: Vec<&LabPod> = self
            .pods
            .iter()
            .filter(|p| p.spec.key() == key || p.spec.name == key)
            .collect();
        match hits.as_slice() {
            [one] => one,
            [] => panic!("no pod {key} in the lab"),
            _ => panic!("pod name {key} is ambiguous; use namespace/name"),
        }
    }

    /// Does a TCP connection from `from` to `to`:`port` get its echo back?
    pub fn try_tcp(&self, from: &str, to: &str, port: u16) -> bool {
        self.try_flow(from, to, Proto::Tcp, port)
    }

    /// Does a UDP datagram from `from` to `to`:`port` get its echo back?
    pub fn try_udp(&self, from: &str, to: &str, port: u16) -> bool {
        self.try_flow(from, to, Proto::Udp, port)
    }

    pub fn try_flow(&self, from: &str, to: &str, proto: Proto, port: u16) -> bool {
        let src = self.pod(from);
        let dst = self.pod(to);
        self.in_netns(&src.netns)
            .arg("python3")
            .arg(e2e_dir().join("lab/try-flow.py"))
            .args([
                proto.as_str(),
                &dst.spec.ip.to_string(),
                &port.to_string(),
                FLOW_TIMEOUT_S,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs `argv` inside the node namespace.
    pub fn run_in_node(&self, argv: &[&str]) -> Result<Output> {
        run(self.in_netns(&self.node_ns).args(argv))
    }

    /// `calico-collect.sh node` inside the node namespace; the tarball's path. Panics when
    /// the collector fails (use `collect_node_with` to handle that).
    pub fn collect_node(&self, out: &Path) -> PathBuf {
        self.collect_node_with(out, &CollectOptions::default())
            .expect("calico-collect.sh node")
    }

    pub fn collect_node_with(&self, out: &Path, opts: &CollectOptions) -> Result<PathBuf> {
        let farm = PathFarm::for_options(opts)?;
        let mut cmd = self.in_netns(&self.node_ns);
        if opts.pretend_ebpf {
            // `ip netns exec` runs in a mount namespace of its own (slave to the host's), so
            // this tmpfs and its fake pinned map vanish with the command.
            let globals = "/sys/fs/bpf/tc/globals";
            cmd.args([
                "sh",
                "-c",
                &format!(
                    "mount -t tmpfs calisnap-e2e /sys/fs/bpf && mkdir -p {globals} && \
                     : > {globals}/cali_v4_state && exec \"$@\""
                ),
                "sh",
            ]);
        }
        cmd.arg("bash")
            .arg(collector_script())
            .args(["node", "--out"])
            .arg(out)
            .args(["--name", &opts.name, "--node", &self.spec.node_name])
            .args(["--timeout", "30"])
            .args(&opts.extra_args)
            .env("PATH", farm.path());
        run_collector(&mut cmd)
    }

    /// `calico-collect.sh cluster` with the kubectl/calicoctl stand-ins of
    /// `testdata/e2e/bin` first on PATH: resources come from the fixture YAML, node commands
    /// run in this lab's node namespace.
    pub fn collect_cluster(&self, out: &Path, opts: &CollectOptions) -> Result<PathBuf> {
        let farm = PathFarm::for_options(opts)?;
        let mut path = vec![e2e_dir().join("bin")];
        path.extend(std::env::split_paths(&farm.path()));
        let mut cmd = Command::new("bash");
        cmd.arg(collector_script())
            .args(["cluster", "--out"])
            .arg(out)
            .args(["--name", &opts.name, "--timeout", "30"])
            .args(&opts.extra_args)
            .env("PATH", std::env::join_paths(path)?)
            .env("CALISNAP_E2E_NETNS", &self.node_ns);
        run_collector(&mut cmd)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Pods first: deleting a pod namespace also removes its veth pair.
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new(&self.ip_bin)
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Namespaces of earlier test processes that died before their `Drop` ran.
fn remove_stale_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// How to run the collector.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// `--name`.
    pub name: String,
    /// Programs to hide from the collector's PATH.
    pub hide_tools: Vec<String>,
    /// When set, the collector's PATH holds only these programs.
    pub only_tools: Option<Vec<String>>,
    pub extra_args: Vec<String>,
    /// Node mode only: make the node look like an eBPF-dataplane node to the collector
    /// (a pinned `cali_*` map under /sys/fs/bpf/tc/globals, in a private mount).
    pub pretend_ebpf: bool,
}

impl Default for CollectOptions {
    fn default() -> CollectOptions {
        CollectOptions {
            name: "e2e".to_string(),
            hide_tools: Vec::new(),
            only_tools: None,
            extra_args: Vec::new(),
            pretend_ebpf: false,
        }
    }
}

/// A PATH for the collector: the test's own PATH, or a directory of symlinks to a chosen
/// subset of its programs.
pub struct PathFarm {
    dir: Option<tempfile::TempDir>,
}

impl PathFarm {
    pub fn for_options(opts: &CollectOptions) -> Result<PathFarm> {
        if opts.hide_tools.is_empty() && opts.only_tools.is_none() {
            return Ok(PathFarm { dir: None });
        }
        let keep = |name: &str| {
            !opts.hide_tools.iter().any(|h| h == name)
                && opts
                    .only_tools
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|o| o == name))
        };
        let dir = tempfile::Builder::new().prefix("calisnap-path").tempdir()?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        for d in std::env::split_paths(&path) {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let link = dir.path().join(&name);
                if !keep(&name) || link.exists() || !is_executable(&e.path()) {
                    continue;
                }
                std::os::unix::fs::symlink(e.path(), &link)?;
            }
        }
        Ok(PathFarm { dir: Some(dir) })
    }

    pub fn path(&self) -> OsString {
        match &self.dir {
            Some(d) => d.path().as_os_str().to_owned(),
            None => std::env::var_os("PATH").unwrap_or_default(),
        }
    }
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs the collector; the tarball it reports on its "wrote <path>" line.
fn run_collector(cmd: &mut Command) -> Result<PathBuf> {
    let out = run(cmd)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .map(|p| PathBuf::from(p.trim()))
        .ok_or_else(|| anyhow!("collector printed no 'wrote' line:\n{stdout}"))
}

/// Copies `tarball` into the directory named by `CALISNAP_E2E_KEEP`, when set, so that a
/// developer can look at what a test collected.
pub fn keep_bundle(tarball: &Path) {
    let Some(dir) = std::env::var_os("CALISNAP_E2E_KEEP") else {
        return;
    };
    let dir = PathBuf::from(dir);
    if let (Ok(()), Some(name)) = (fs::create_dir_all(&dir), tarball.file_name()) {
        let _ = fs::copy(tarball, dir.join(name));
    }
}

/// A bundle tarball read into memory.
pub struct Bundle {
    /// The single top directory, `calico-bundle-<name>-<ts>`.
    pub root: String,
    /// Files by path relative to the root.
    pub files: BTreeMap<String, Vec<u8>>,
    pub manifest: serde_json::Value,
}

impl Bundle {
    pub fn read(tarball: &Path) -> Result<Bundle> {
        let gz = flate2::read::GzDecoder::new(File::open(tarball)?);
        let mut archive = tar::Archive::new(gz);
        let mut roots = std::collections::BTreeSet::new();
        let mut files = BTreeMap::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let (root, rel) = match path.split_once('/') {
                Some((root, rel)) => (root.to_string(), rel.trim_end_matches('/').to_string()),
                None => (path.trim_end_matches('/').to_string(), String::new()),
            };
            roots.insert(root);
            if entry.header().entry_type().is_file() {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                files.insert(rel, data);
            }
        }
        if roots.len() != 1 {
            bail!("expected one top directory, found {roots:?}");
        }
        let root = roots.into_iter().next().unwrap_or_default();
        let manifest = files
            .get("manifest.json")
            .ok_or_else(|| anyhow!("no manifest.json"))?;
        let manifest = serde_json::from_slice(manifest).context("manifest.json is not JSON")?;
        Ok(Bundle {
            root,
            files,
            manifest,
        })
    }

    pub fn text(&self, rel: &str) -> Option<String> {
        self.files
            .get(rel)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn commands(&self) -> Vec<&serde_json::Value> {
        self.manifest["commands"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    pub fn skipped(&self) -> Vec<&serde_json::Value> {
        self.manifest["skipped"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    /// The first command of that name on that node (`None` node: cluster-level).
    pub fn command(&self, node: Option<&str>, name: &str) -> Option<&serde_json::Value> {
        self.commands()
            .into_iter()
            .find(|c| c["name"] == name && c["node"].as_str() == node)
    }
}

/// A rule line of `iptables-save -c` output with its counters.
#[derive(Clone, Debug)]
pub struct CountedRule {
    /// 1-based line in the dump.
    pub line: usize,
    pub packets: u64,
    pub bytes: u64,
    /// The rule after `-A <chain> `.
    pub rule: String,
}

/// The rules of `chain` in an `iptables-save -c` dump (in any table).
pub fn counted_rules(dump: &str, chain: &str) -> Vec<CountedRule> {
    let marker = format!("-A {chain} ");
    dump.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let rest = line.strip_prefix('[')?;
            let (counts, rule) = rest.split_once("] ")?;
            let rule = rule.strip_prefix(&marker)?;
            let (p, b) = counts.split_once(':')?;
            Some(CountedRule {
                line: i + 1,
                packets: p.parse().ok()?,
                bytes: b.parse().ok()?,
                rule: rule.to_string(),
            })
        })
        .collect()
}

/// The names in the collector's node table, in table order (duplicates kept).
pub fn collector_table_names() -> Vec<String> {
    let script = fs::read_to_string(collector_script()).unwrap_or_default();
    let Some((_, rest)) = script.split_once("NODE_TABLE='") else {
        return Vec::new();
    };
    let table = rest.split_once('\'').map(|(t, _)| t).unwrap_or("");
    table
        .lines()
        .filter_map(|l| l.split('|').next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}
