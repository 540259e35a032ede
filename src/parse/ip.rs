//! iproute2 output: `ip route` / `ip -6 route` / `ip route show table all` (destination or
//! `default`, route type such as `blackhole`, `via`, `dev`, `proto`, `scope`, `src`, `metric`,
//! `table`, `mtu`, `onlink`, `linkdown`, multipath `nexthop` lines), `ip addr` (index, name
//! with `@peer`, flags, mtu, state, `link/…` address, `inet`/`inet6` addresses with prefix),
//! `ip -br addr`, and the `ip -j` JSON of both.
//!
//! JSON records carry the line where the JSON document starts (iproute2 prints it on one
//! line). Unknown keywords are skipped, not errors: iproute2 adds attributes over time.
//! What a route means for Calico (which pool, which tunnel) is not decided here.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

use super::{ParseError, numbered_lines, parse_net};

/// Route types iproute2 prints before the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RouteKind {
    Unicast,
    Local,
    Broadcast,
    Multicast,
    Anycast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
    Nat,
}

impl RouteKind {
    fn from_word(w: &str) -> Option<RouteKind> {
        Some(match w {
            "unicast" => RouteKind::Unicast,
            "local" => RouteKind::Local,
            "broadcast" => RouteKind::Broadcast,
            "multicast" => RouteKind::Multicast,
            "anycast" => RouteKind::Anycast,
            "blackhole" => RouteKind::Blackhole,
            "unreachable" => RouteKind::Unreachable,
            "prohibit" => RouteKind::Prohibit,
            "throw" => RouteKind::Throw,
            "nat" => RouteKind::Nat,
            _ => return None,
        })
    }
}

/// One path of a multipath route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nexthop {
    pub line: usize,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub weight: Option<u32>,
    pub onlink: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub line: usize,
    pub kind: RouteKind,
    /// `None` for `default`. A bare address is a host route (/32, /128).
    pub dst: Option<IpNet>,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub proto: Option<String>,
    pub scope: Option<String>,
    pub src: Option<IpAddr>,
    pub metric: Option<u32>,
    pub table: Option<String>,
    pub mtu: Option<u32>,
    pub onlink: bool,
    pub linkdown: bool,
    pub nexthops: Vec<Nexthop>,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst.is_none()
    }

    fn new(line: usize) -> Route {
        Route {
            line,
            kind: RouteKind::Unicast,
            dst: None,
            via: None,
            dev: None,
            proto: None,
            scope: None,
            src: None,
            metric: None,
            table: None,
            mtu: None,
            onlink: false,
            linkdown: false,
            nexthops: Vec::new(),
        }
    }
}

/// Parsed `ip route` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Routes {
    pub routes: Vec<Route>,
    pub errors: Vec<ParseError>,
}

impl Routes {
    pub fn records(&self) -> usize {
        self.routes.len()
    }
}

pub fn parse_routes(text: &str) -> Routes {
    let mut out = Routes::default();
    if let Some((line, json)) = json_start(text) {
        parse_routes_json(&mut out, line, json);
        return out;
    }
    for (no, line) in numbered_lines(text, 1) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let toks: Vec<&str> = t.split_ascii_whitespace().collect();
        if toks[0] == "nexthop" {
            match out.routes.last_mut() {
                Some(r) => r.nexthops.push(parse_nexthop(no, &toks[1..])),
                None => out
                    .errors
                    .push(ParseError::new(no, "nexthop line without a route")),
            }
            continue;
        }
        match parse_route_tokens(no, &toks) {
            Ok(r) => out.routes.push(r),
            Err(e) => out.errors.push(ParseError::new(no, e)),
        }
    }
    out
}

fn parse_route_tokens(no: usize, toks: &[&str]) -> Result<Route, String> {
    let mut r = Route::new(no);
    let mut i = 0;
    if let Some(kind) = toks.first().and_then(|w| RouteKind::from_word(w)) {
        r.kind = kind;
        i += 1;
    }
    let dst = toks.get(i).ok_or("route without destination")?;
    if *dst != "default" {
        r.dst = Some(parse_net(dst).ok_or_else(|| format!("bad route destination {dst:?}"))?);
    }
    i += 1;
    while i < toks.len() {
        let key = toks[i];
        let val = toks.get(i + 1).copied();
        let need = || val.ok_or_else(|| format!("{key} without a value"));
        match key {
            "via" => {
                // `via inet6 fe80::1` names the family first.
                if matches!(val, Some("inet") | Some("inet6")) {
                    i += 1;
                }
                let v = toks.get(i + 1).ok_or("via without a gateway")?;
                r.via = Some(v.parse().map_err(|_| format!("bad gateway {v:?}"))?);
                i += 2;
            }
            "dev" => {
                r.dev = Some(need()?.to_string());
                i += 2;
            }
            "proto" => {
                r.proto = Some(need()?.to_string());
                i += 2;
            }
            "scope" => {
                r.scope = Some(need()?.to_string());
                i += 2;
            }
            "table" => {
                r.table = Some(need()?.to_string());
                i += 2;
            }
            "src" => {
                let v = need()?;
                r.src = Some(v.parse().map_err(|_| format!("bad src {v:?}"))?);
                i += 2;
            }
            "metric" | "preference" => {
                let v = need()?;
                r.metric = Some(v.parse().map_err(|_| format!("bad metric {v:?}"))?);
                i += 2;
            }
            "mtu" => {
                if val == Some("lock") {
                    i += 1;
                }
                let v = toks.get(i + 1).ok_or("mtu without a value")?;
                r.mtu = v.parse().ok();
                i += 2;
            }
            "onlink" => {
                r.onlink = true;
                i += 1;
            }
            "linkdown" => {
                r.linkdown = true;
                i += 1;
            }
            "nexthop" => {
                // Single-line multipath (`ip -o route`): nexthop groups up to the next one.
                let end = toks[i + 1..]
                    .iter()
                    .position(|t| *t == "nexthop")
                    .map_or(toks.len(), |p| i + 1 + p);
                r.nexthops.push(parse_nexthop(no, &toks[i + 1..end]));
                i = end;
            }
            // Keywords with one argument we do not keep.
            "expires" | "pref" | "realm" | "realms" | "advmss" | "error" | "hoplimit"
            | "initcwnd" | "initrwnd" | "rtt" | "rttvar" | "window" | "ssthresh" | "cwnd"
            | "quickack" | "congctl" | "features" | "fastopen_no_cookie" | "tos" | "dsfield"
            | "encap" | "nhid" | "ttl-propagate" | "weight" => i += 2,
            // Flags and anything new.
            _ => i += 1,
        }
    }
    Ok(r)
}

fn parse_nexthop(no: usize, toks: &[&str]) -> Nexthop {
    let mut n = Nexthop {
        line: no,
        via: None,
        dev: None,
        weight: None,
        onlink: false,
    };
    let mut i = 0;
    while i < toks.len() {
        match toks[i] {
            "via" => {
                if matches!(toks.get(i + 1), Some(&"inet") | Some(&"inet6")) {
                    i += 1;
                }
                n.via = toks.get(i + 1).and_then(|v| v.parse().ok());
                i += 2;
            }
            "dev" => {
                n.dev = toks.get(i + 1).map(|v| v.to_string());
                i += 2;
            }
            "weight" => {
                n.weight = toks.get(i + 1).and_then(|v| v.parse().ok());
                i += 2;
            }
            "onlink" => {
                n.onlink = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    n
}

/// The first non-blank character is `[` or `{`: an `ip -j` document. Returns its line and
/// the text from there on.
fn json_start(text: &str) -> Option<(usize, &str)> {
    let mut off = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if t.is_empty() {
            off += line.len();
            continue;
        }
        return (t.starts_with('[') || t.starts_with('{')).then(|| (i + 1, &text[off..]));
    }
    None
}

fn json_docs(out_errors: &mut Vec<ParseError>, line: usize, json: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for doc in serde_json::Deserializer::from_str(json).into_iter::<Value>() {
        match doc {
            Ok(v) => docs.push(v),
            Err(e) => {
                out_errors.push(ParseError::new(
                    line + e.line().saturating_sub(1),
                    format!("bad ip -j JSON: {e}"),
                ));
                break;
            }
        }
    }
    docs
}

fn items(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter()
        .flat_map(|d| match d {
            Value::Array(a) => a,
            other => vec![other],
        })
        .collect()
}

fn jstr(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn jnum(v: &Value, k: &str) -> Option<u32> {
    v.get(k)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn jflags(v: &Value) -> Vec<String> {
    v.get("flags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_routes_json(out: &mut Routes, line: usize, json: &str) {
    for item in items(json_docs(&mut out.errors, line, json)) {
        let mut r = Route::new(line);
        if let Some(k) = item.get("type").and_then(Value::as_str) {
            r.kind = RouteKind::from_word(k).unwrap_or(RouteKind::Unicast);
        }
        match item.get("dst").and_then(Value::as_str) {
            Some("default") | None => {}
            Some(d) => match parse_net(d) {
                Some(n) => r.dst = Some(n),
                None => {
                    out.errors.push(ParseError::new(
                        line,
                        format!("bad route destination {d:?}"),
                    ));
                    continue;
                }
            },
        }
        r.via = jstr(&item, "gateway").and_then(|g| g.parse().ok());
        r.dev = jstr(&item, "dev");
        r.proto = jstr(&item, "protocol");
        r.scope = jstr(&item, "scope");
        r.src = jstr(&item, "prefsrc").and_then(|s| s.parse().ok());
        r.metric = jnum(&item, "metric");
        r.table = jstr(&item, "table");
        r.mtu = item
            .get("metrics")
            .and_then(Value::as_array)
            .and_then(|m| m.iter().find_map(|x| jnum(x, "mtu")));
        let flags = jflags(&item);
        r.onlink = flags.iter().any(|f| f == "onlink");
        r.linkdown = flags.iter().any(|f| f == "linkdown");
        if let Some(nhs) = item.get("nexthops").and_then(Value::as_array) {
            for nh in nhs {
                r.nexthops.push(Nexthop {
                    line,
                    via: jstr(nh, "gateway").and_then(|g| g.parse().ok()),
                    dev: jstr(nh, "dev"),
                    weight: jnum(nh, "weight"),
                    onlink: jflags(nh).iter().any(|f| f == "onlink"),
                });
            }
        }
        out.routes.push(r);
    }
}

// ---------------------------------------------------------------------------------------
// ip addr

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AddrFamily {
    Inet,
    Inet6,
}

/// One `inet`/`inet6` address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addr {
    pub line: usize,
    pub family: AddrFamily,
    /// Address with its prefix length (host bits kept: `10.0.0.5/24`).
    pub addr: IpNet,
    /// Point-to-point peer (`peer 10.0.0.2/32`).
    pub peer: Option<IpNet>,
    pub brd: Option<IpAddr>,
    pub scope: Option<String>,
    /// `eth0:1` style label, when it differs from the interface.
    pub label: Option<String>,
    /// `secondary`, `dynamic`, `noprefixroute`, …
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iface {
    pub line: usize,
    pub index: Option<u32>,
    pub name: String,
    /// After `@`: `if3` (peer index in another namespace), `NONE`, or a parent name.
    pub peer: Option<String>,
    pub flags: Vec<String>,
    pub mtu: Option<u32>,
    pub state: Option<String>,
    pub master: Option<String>,
    /// `ether`, `loopback`, `ipip`, `none`, …
    pub link_type: Option<String>,
    pub mac: Option<String>,
    pub link_netns: Option<String>,
    pub addrs: Vec<Addr>,
}

impl Iface {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// Parsed `ip addr` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Addrs {
    pub ifaces: Vec<Iface>,
    pub errors: Vec<ParseError>,
}

impl Addrs {
    /// Records as the report counts them: interfaces.
    pub fn records(&self) -> usize {
        self.ifaces.len()
    }

    pub fn iface(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }
}

pub fn parse_addrs(text: &str) -> Addrs {
    let mut out = Addrs::default();
    if let Some((line, json)) = json_start(text) {
        parse_addrs_json(&mut out, line, json);
        return out;
    }
    for (no, line) in numbered_lines(text, 1) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let indented = line.starts_with(char::is_whitespace);
        if !indented && let Some(iface) = parse_iface_header(no, t) {
            out.ifaces.push(iface);
            continue;
        }
        if !indented && let Some(iface) = parse_brief(no, t) {
            out.ifaces.push(iface);
            continue;
        }
        let toks: Vec<&str> = t.split_ascii_whitespace().collect();
        let Some(cur) = out.ifaces.last_mut() else {
            out.errors
                .push(ParseError::new(no, "address line before any interface"));
            continue;
        };
        match toks[0] {
            "inet" | "inet6" => match parse_addr_line(no, &toks, &cur.name) {
                Ok(a) => cur.addrs.push(a),
                Err(e) => out.errors.push(ParseError::new(no, e)),
            },
            link if link.starts_with("link/") => {
                cur.link_type = Some(link["link/".len()..].to_string());
                if let Some(mac) = toks.get(1)
                    && *mac != "brd"
                {
                    cur.mac = Some(mac.to_string());
                }
                if let Some(p) = toks
                    .iter()
                    .position(|t| *t == "link-netns" || *t == "link-netnsid")
                {
                    cur.link_netns = toks.get(p + 1).map(|s| s.to_string());
                }
            }
            // valid_lft/preferred_lft, altname, vxlan/veth details (`ip -d`), …
            _ => {}
        }
    }
    out
}

/// `4: cali1234@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP …`
fn parse_iface_header(no: usize, t: &str) -> Option<Iface> {
    let (idx, rest) = t.split_once(": ")?;
    let index: u32 = idx.parse().ok()?;
    let lt = rest.find(": <").or_else(|| rest.find(':'))?;
    let full = &rest[..lt];
    let after = rest[lt + 1..].trim_start();
    let (name, peer) = match full.split_once('@') {
        Some((n, p)) => (n, Some(p.to_string())),
        None => (full, None),
    };
    let mut iface = Iface {
        line: no,
        index: Some(index),
        name: name.to_string(),
        peer,
        flags: Vec::new(),
        mtu: None,
        state: None,
        master: None,
        link_type: None,
        mac: None,
        link_netns: None,
        addrs: Vec::new(),
    };
    let after = if let Some(f) = after.strip_prefix('<') {
        let (flags, rest) = f.split_once('>')?;
        iface.flags = flags
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        rest
    } else {
        after
    };
    let toks: Vec<&str> = after.split_ascii_whitespace().collect();
    let mut i = 0;
    while i < toks.len() {
        let v = toks.get(i + 1);
        match toks[i] {
            "mtu" => iface.mtu = v.and_then(|v| v.parse().ok()),
            "state" => iface.state = v.map(|v| v.to_string()),
            "master" => iface.master = v.map(|v| v.to_string()),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Some(iface)
}

/// `ip -br addr`: `eth0@if5  UP  10.0.0.5/24 fe80::1/64`
fn parse_brief(no: usize, t: &str) -> Option<Iface> {
    let toks: Vec<&str> = t.split_ascii_whitespace().collect();
    let state = *toks.get(1)?;
    if !matches!(
        state,
        "UP" | "DOWN" | "UNKNOWN" | "LOWERLAYERDOWN" | "DORMANT" | "NOTPRESENT" | "TESTING"
    ) {
        return None;
    }
    let (name, peer) = match toks[0].split_once('@') {
        Some((n, p)) => (n, Some(p.to_string())),
        None => (toks[0], None),
    };
    let mut addrs = Vec::new();
    for a in &toks[2..] {
        let addr = parse_net(a)?;
        addrs.push(Addr {
            line: no,
            family: if addr.addr().is_ipv4() {
                AddrFamily::Inet
            } else {
                AddrFamily::Inet6
            },
            addr,
            peer: None,
            brd: None,
            scope: None,
            label: None,
            flags: Vec::new(),
        });
    }
    Some(Iface {
        line: no,
        index: None,
        name: name.to_string(),
        peer,
        flags: Vec::new(),
        mtu: None,
        state: Some(state.to_string()),
        master: None,
        link_type: None,
        mac: None,
        link_netns: None,
        addrs,
    })
}

/// `inet 10.0.0.5/24 brd 10.0.0.255 scope global secondary dynamic eth0:1`
fn parse_addr_line(no: usize, toks: &[&str], ifname: &str) -> Result<Addr, String> {
    let family = if toks[0] == "inet" {
        AddrFamily::Inet
    } else {
        AddrFamily::Inet6
    };
    let a = toks.get(1).ok_or("address line without an address")?;
    let addr = parse_net(a).ok_or_else(|| format!("bad address {a:?}"))?;
    let mut out = Addr {
        line: no,
        family,
        addr,
        peer: None,
        brd: None,
        scope: None,
        label: None,
        flags: Vec::new(),
    };
    let mut i = 2;
    while i < toks.len() {
        let v = toks.get(i + 1).copied();
        match toks[i] {
            "peer" => out.peer = v.and_then(parse_net),
            "brd" => out.brd = v.and_then(|v| v.parse().ok()),
            "scope" => out.scope = v.map(str::to_string),
            // Keywords whose value we skip.
            "metric" | "valid_lft" | "preferred_lft" | "proto" => {}
            word => {
                if i + 1 == toks.len() && family == AddrFamily::Inet && word != ifname {
                    out.label = Some(word.to_string());
                } else if i + 1 < toks.len() || word != ifname {
                    out.flags.push(word.to_string());
                }
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Ok(out)
}

fn parse_addrs_json(out: &mut Addrs, line: usize, json: &str) {
    for item in items(json_docs(&mut out.errors, line, json)) {
        let Some(name) = jstr(&item, "ifname") else {
            out.errors
                .push(ParseError::new(line, "ip -j addr item without ifname"));
            continue;
        };
        let peer = jstr(&item, "link").or_else(|| {
            item.get("link_index")
                .and_then(Value::as_u64)
                .map(|i| format!("if{i}"))
        });
        let mut iface = Iface {
            line,
            index: jnum(&item, "ifindex"),
            name,
            peer,
            flags: jflags(&item),
            mtu: jnum(&item, "mtu"),
            state: jstr(&item, "operstate"),
            master: jstr(&item, "master"),
            link_type: jstr(&item, "link_type"),
            mac: jstr(&item, "address"),
            link_netns: item
                .get("link_netnsid")
                .map(|v| v.to_string().trim_matches('"').to_string()),
            addrs: Vec::new(),
        };
        for a in item
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let family = match a.get("family").and_then(Value::as_str) {
                Some("inet") => AddrFamily::Inet,
                Some("inet6") => AddrFamily::Inet6,
                _ => continue,
            };
            let (Some(local), Some(plen)) = (
                jstr(a, "local").and_then(|l| l.parse::<IpAddr>().ok()),
                a.get("prefixlen")
                    .and_then(Value::as_u64)
                    .and_then(|p| u8::try_from(p).ok()),
            ) else {
                out.errors.push(ParseError::new(
                    line,
                    "ip -j addr_info without local/prefixlen",
                ));
                continue;
            };
            let Ok(addr) = IpNet::new(local, plen) else {
                out.errors
                    .push(ParseError::new(line, format!("bad prefix length {plen}")));
                continue;
            };
            iface.addrs.push(Addr {
                line,
                family,
                addr,
                peer: jstr(a, "address").and_then(|p| parse_net(&p)),
                brd: jstr(a, "broadcast").and_then(|b| b.parse().ok()),
                scope: jstr(a, "scope"),
                label: jstr(a, "label").filter(|l| *l != iface.name),
                flags: Vec::new(),
            });
        }
        out.ifaces.push(iface);
    }
}
