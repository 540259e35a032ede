//! CAL050: Felix's own drop rules (end of tier, no profile matched, unknown interface) counted
//! packets in an `iptables-save -c` dump, each mapped to the endpoint its chain serves and to
//! the policies or profiles the chain evaluated before dropping. Drops by a policy's own deny
//! rules are not this check's business (they are in CAL052's ranking).

use super::{Check, Evidence, Finding, Severity, Step, shell_quote};
use crate::bundle::ArtifactKind;
use crate::model::flows::{
    CalicoDrop, ChainEndpoint, ChainOwners, EndpointsByIp, Evaluated, EvaluatedChain, calico_drop,
    packets, profiles_before, tier_policies,
};
use crate::model::node::{Dumped, NodeModel};
use crate::model::{Endpoint, Model};
use crate::parse::iptables_save::{Chain, Dump, MatchKind, Rule, Table, iface_matches};
use crate::parse::{Parsed, ip};

pub const CHECK: Check = Check {
    code: "CAL050",
    name: "drops-counted",
    severity: Severity::Warning,
    step: Step::PacketPath,
    doc: r#"
## What it finds
Packet counters above zero (`iptables-save -c`) on the drop rules Felix writes at the end of
its endpoint and dispatch chains:

- `End of tier <t>. Drop if no policies passed packet` (before v3.30: `Drop if no policies
  passed packet`): no policy of the tier allowed the packet or passed it on;
- `Drop if no profiles matched`: no tier decided and none of the endpoint's profiles accepted;
- `Unknown interface` in `cali-from-wl-dispatch` / `cali-to-wl-dispatch`: a packet from or to
  a workload interface Felix has no endpoint for.

Each is mapped back to the endpoint the chain serves (`cali-tw-<iface>` is the ingress of the
pod with that interface, `cali-fw-<iface>` its egress, `cali-fh-`/`cali-th-` a host endpoint's)
and to the policies of the tier (or the profiles) the chain jumped to before the drop. A
`REJECT` written by `iptablesFilterDenyAction: Reject` counts the same.

## Why it matters
This is where "the policy should allow it" traffic dies: a counter on an end-of-tier drop means
packets reached the end of the tier without any of the listed policies allowing them. The
usual causes are a selector that does not match the peer, a port or protocol that differs, or
an IP set that lacks the peer's address (CAL040).

## Example
`cali-tw-cali6793bd60945` on node-2 (ingress of `demo/backend`): `[45:2700] … "End of tier
default. Drop if no policies passed packet" … -j DROP`, after a jump to the chain of
`demo/allow-to-backend`.

## How to confirm by hand
`iptables-save -c -t filter | grep -- '-A cali-tw-<iface> '` on the node, twice a few seconds
apart while the client retries: the drop's counter grows with each attempt. Counters run
since the rule was written, so an old count alone does not prove a current problem.

## What to do
Read the listed policies against the flow: selectors (with the labels the pod really has),
ports, protocol, and the members of the IP sets their rules use. Fix the policy that should
allow the traffic; if the traffic is unwanted, the drop is the policy working.
"#,
    run,
};

fn run(m: &Model<'_>, out: &mut Vec<Finding>) {
    let by_ip = m.endpoints_by_ip();
    let by_iface = m.endpoints_by_iface();
    for node in &m.nodes {
        let owners = ChainOwners::new(m, node, &by_iface);
        for (dump, program) in node.ip_dumps() {
            for table in &dump.data.tables {
                for chain in &table.chains {
                    for (idx, rule) in chain.rules.iter().enumerate() {
                        if packets(rule) == 0 {
                            continue;
                        }
                        let Some(kind) = calico_drop(rule) else {
                            continue;
                        };
                        let at = At {
                            m,
                            node,
                            dump,
                            program,
                            table,
                            chain,
                            rule,
                        };
                        let f = match kind {
                            CalicoDrop::EndOfTier { tier } => {
                                end_of_tier(&at, &owners, idx, tier.as_deref())
                            }
                            CalicoDrop::NoProfile => no_profile(&at, &owners, idx),
                            CalicoDrop::UnknownInterface => unknown_interface(&at, &owners, &by_ip),
                        };
                        out.push(f);
                    }
                }
            }
        }
    }
}

/// A counted drop rule and where it is.
struct At<'a, 'b> {
    m: &'a Model<'b>,
    node: &'a NodeModel<'b>,
    dump: Dumped<'b, Dump>,
    program: &'static str,
    table: &'b Table,
    chain: &'b Chain,
    rule: &'b Rule,
}

impl At<'_, '_> {
    fn evidence(&self, line: usize, text: &str) -> Evidence {
        Evidence {
            path: self.dump.path().to_string(),
            line,
            excerpt: text.to_string(),
        }
    }

    /// The dump command narrowed to the chain.
    fn command(&self) -> String {
        format!(
            "{} -c -t {} | grep -- {}",
            self.program,
            self.table.name,
            shell_quote(&format!("-A {} ", self.chain.name))
        )
    }

    fn confirm(&self) -> String {
        format!("{}   # on {}", self.command(), self.node.name)
    }

    fn counted(&self) -> String {
        let c = self.rule.counters.unwrap_or_default();
        format!("{} packets ({} bytes)", c.packets, c.bytes)
    }

    fn base(&self, title: String, message: String) -> Finding {
        Finding::of(&CHECK, title, message)
            .on_node(&self.node.name)
            .evidence(self.evidence(self.rule.line, &self.rule.text))
            .confirm(self.confirm())
    }
}

fn endpoint_subjects(mut f: Finding, e: &Endpoint) -> Finding {
    f = f.subject("endpoint", &e.key);
    for net in &e.ips {
        f = f.subject("ip", net.addr().to_string());
    }
    f
}

fn names_of(m: &Model<'_>, ev: &[EvaluatedChain]) -> String {
    ev.iter().map(|e| e.name(m)).collect::<Vec<_>>().join(", ")
}

fn owner_text(m: &Model<'_>, owner: &Option<ChainEndpoint>, chain: &str) -> String {
    owner
        .as_ref()
        .map(|o| o.describe(m))
        .unwrap_or_else(|| format!("chain {chain}"))
}

fn end_of_tier(at: &At<'_, '_>, owners: &ChainOwners, idx: usize, tier: Option<&str>) -> Finding {
    let m = at.m;
    let owner = owners.owner(m, &at.chain.name);
    let evaluated = tier_policies(at.node, at.table, at.chain, idx);
    // Before v3.30 the comment does not name the tier; the policies it closes do.
    let tier = tier.map(str::to_string).or_else(|| {
        evaluated.iter().find_map(|e| match e.what {
            Evaluated::Policy(p) => Some(m.policies[p].tier.clone()),
            _ => None,
        })
    });
    let tier_text = tier
        .as_deref()
        .map(|t| format!("tier {t}"))
        .unwrap_or_else(|| "its tier".to_string());
    let who = owner_text(m, &owner, &at.chain.name);
    let policies = if evaluated.is_empty() {
        "the chain jumps to no policy before it".to_string()
    } else {
        format!(
            "the {} evaluated before it ({}) neither allowed nor passed them",
            if evaluated.len() == 1 {
                "policy"
            } else {
                "policies"
            },
            names_of(m, &evaluated)
        )
    };
    let mut f = at.base(
        format!(
            "{} dropped at the end of {tier_text} ({who}) on {}",
            at.counted(),
            at.node.name
        ),
        format!(
            "{} on {} ({who}) counted {} on the drop at the end of {tier_text}: {policies}. Felix drops \
             here what no policy of the tier decided; a policy's own deny would have dropped \
             earlier, in the policy's chain.",
            at.chain.name,
            at.node.name,
            at.counted()
        ),
    );
    let endpoint = owner
        .as_ref()
        .and_then(|o| o.endpoint)
        .map(|e| &m.endpoints[e]);
    if let Some(e) = endpoint {
        f = endpoint_subjects(f, e);
    }
    f = f.subject("chain", &at.chain.name);
    for e in &evaluated {
        if let Evaluated::Policy(p) = e.what {
            f = f.subject("policy", &m.policies[p].display);
        }
    }
    for e in evaluated.iter().take(5) {
        f = f.evidence(at.evidence(e.line, &e.text));
    }
    let target = endpoint
        .map(|e| e.key.clone())
        .unwrap_or_else(|| format!("interface {}", owner.map(|o| o.iface).unwrap_or_default()));
    f.fix(format!(
        "If this traffic should reach {target}, find the policy of {tier_text} meant to allow it \
         and check its selector against the pods' real labels, its ports and protocol, and the \
         IP sets its rules use (CAL040 lists missing members). If the traffic is unwanted, the \
         drop is the policy working."
    ))
}

fn no_profile(at: &At<'_, '_>, owners: &ChainOwners, idx: usize) -> Finding {
    let m = at.m;
    let owner = owners.owner(m, &at.chain.name);
    let who = owner_text(m, &owner, &at.chain.name);
    let profiles = profiles_before(at.node, at.table, at.chain, idx);
    let list = if profiles.is_empty() {
        "the chain jumps to no profile".to_string()
    } else {
        format!(
            "none of its profiles ({}) accepted them",
            names_of(m, &profiles)
        )
    };
    let mut f = at.base(
        format!(
            "{} dropped because no profile matched ({who}) on {}",
            at.counted(),
            at.node.name
        ),
        format!(
            "{} on {} ({who}) counted {} on \"Drop if no profiles matched\": no policy tier \
             decided these packets (no policy applies in this direction, or every tier passed \
             them) and {list}.",
            at.chain.name,
            at.node.name,
            at.counted()
        ),
    );
    let endpoint = owner
        .as_ref()
        .and_then(|o| o.endpoint)
        .map(|e| &m.endpoints[e]);
    if let Some(e) = endpoint {
        f = endpoint_subjects(f, e);
    }
    f = f.subject("chain", &at.chain.name);
    for p in &profiles {
        if let Evaluated::Profile(name) = &p.what {
            f = f.subject("profile", name);
        }
    }
    for p in profiles.iter().take(5) {
        f = f.evidence(at.evidence(p.line, &p.text));
    }
    f.fix(
        "A Kubernetes pod's namespace profile (kns.<namespace>) allows everything, so a pod only \
         gets here when that profile chain is missing or empty in the dataplane (compare \
         `calicoctl get profile kns.<namespace> -o yaml` with the dump) or a tier passed the \
         traffic on. For a host endpoint, profiles are the only allow when no policy applies: \
         add a policy or profile that allows the traffic.",
    )
}

/// Direction words of a dispatch chain.
fn dispatch_direction(chain: &str) -> &'static str {
    if chain.starts_with("cali-to-") {
        "to"
    } else {
        "from"
    }
}

/// The interface patterns whose packets reach the dispatch chain (`-i cali+ -j
/// cali-from-wl-dispatch`), and the ones the dispatch tree sends on to an endpoint chain.
fn dispatch_patterns(
    m: &Model<'_>,
    table: &Table,
    owners: &ChainOwners,
    root: &str,
) -> (Vec<String>, Vec<String>) {
    let iface_of = |r: &Rule| -> Option<String> {
        r.matches.iter().find_map(|mt| match &mt.kind {
            MatchKind::InInterface(i) | MatchKind::OutInterface(i) if !mt.negated => {
                Some(i.to_string())
            }
            _ => None,
        })
    };
    let mut entry = Vec::new();
    let mut dispatched = Vec::new();
    for c in &table.chains {
        for r in &c.rules {
            let Some(target) = r.jump_target() else {
                continue;
            };
            if target == root && !c.name.starts_with(root) {
                entry.extend(iface_of(r).filter(|p| p.ends_with('+')));
            }
            if c.name.starts_with(root) && owners.owner(m, target).is_some() {
                dispatched.extend(iface_of(r));
            }
        }
    }
    if entry.is_empty() {
        entry.push("cali+".to_string());
    }
    (entry, dispatched)
}

/// The root dispatch chain a (sub-)dispatch chain belongs to.
fn dispatch_root(chain: &str) -> &str {
    [
        crate::calico::names::CHAIN_FROM_WORKLOAD_DISPATCH,
        crate::calico::names::CHAIN_TO_WORKLOAD_DISPATCH,
    ]
    .into_iter()
    .find(|r| chain.starts_with(r))
    .unwrap_or(chain)
}

/// A host route as `ip route` prints it (the bare address), a network with its prefix.
fn host_or_net(n: ipnet::IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// A route to a workload-looking interface that no dispatch rule sends to an endpoint chain.
struct Suspect<'b> {
    path: &'b str,
    route: &'b ip::Route,
    dev: &'b str,
}

fn unknown_interface(at: &At<'_, '_>, owners: &ChainOwners, by_ip: &EndpointsByIp) -> Finding {
    let m = at.m;
    let dir = dispatch_direction(&at.chain.name);
    let (entry, dispatched) = dispatch_patterns(m, at.table, owners, dispatch_root(&at.chain.name));
    let mut suspects: Vec<Suspect<'_>> = Vec::new();
    for a in m.node_artifacts(&at.node.name, ArtifactKind::IpRoute) {
        let Parsed::IpRoute(routes) = &a.parsed else {
            continue;
        };
        for r in &routes.routes {
            let devs = r
                .dev
                .iter()
                .chain(r.nexthops.iter().filter_map(|n| n.dev.as_ref()));
            for dev in devs {
                if entry.iter().any(|p| iface_matches(p, dev))
                    && !dispatched.iter().any(|p| iface_matches(p, dev))
                    && !suspects.iter().any(|s| s.dev == dev.as_str())
                {
                    suspects.push(Suspect {
                        path: &a.path,
                        route: r,
                        dev,
                    });
                }
            }
        }
    }
    let listed: Vec<String> = suspects
        .iter()
        .map(|s| {
            let dst = s.route.dst.map(host_or_net).unwrap_or_default();
            let who = s
                .route
                .dst
                .and_then(|d| by_ip.get(d.addr()))
                .map(|e| format!(" ({})", m.endpoints[e].key))
                .unwrap_or_default();
            format!("{} → {}{who}", dst, s.dev)
        })
        .collect();
    let why = if listed.is_empty() {
        "No route in the bundle names such an interface: the packets may come from a pod that \
         started before Felix programmed its endpoint, or from an interface that is not a Calico \
         workload (another CNI, a leftover veth)."
            .to_string()
    } else {
        format!(
            "The node routes to interface(s) that no dispatch rule sends to an endpoint chain: {}.",
            listed.join(", ")
        )
    };
    let mut f = at
        .base(
            format!(
                "{} dropped {dir} an unknown interface by {} on {}",
                at.counted(),
                at.chain.name,
                at.node.name
            ),
            format!(
                "{} on {} counted {} on its \"Unknown interface\" drop: packets {dir} a workload \
             interface for which Felix has no endpoint chain. {why}",
                at.chain.name,
                at.node.name,
                at.counted()
            ),
        )
        .subject("chain", &at.chain.name);
    for s in suspects.iter().take(5) {
        if let Some(d) = s.route.dst {
            if let Some(e) = by_ip.get(d.addr()) {
                f = f.subject("endpoint", &m.endpoints[e].key);
            }
            f = f.subject("ip", d.addr().to_string());
        }
        f = f.evidence(Evidence {
            path: s.path.to_string(),
            line: s.route.line,
            excerpt: super::line_text(m, s.path, s.route.line).unwrap_or_else(|| {
                format!(
                    "{} dev {}",
                    s.route.dst.map(host_or_net).unwrap_or_default(),
                    s.dev
                )
            }),
        });
    }
    f.confirm(format!(
        "{}; ip route | grep -- ' dev cali'   # on {}",
        at.command(),
        at.node.name
    ))
    .fix(format!(
        "Find the interface: a cali interface with a route but no `{}` in the dispatch chain is \
         one Felix does not know. Check that its pod has a WorkloadEndpoint and that Felix on {} \
         is not behind or failing (its log); remove leftover veths of deleted pods; restart \
         calico-node on {} if Felix is behind.",
        if dir == "to" {
            "-o <iface> -g cali-tw-<iface>"
        } else {
            "-i <iface> -g cali-fw-<iface>"
        },
        at.node.name,
        at.node.name
    ))
}

#[cfg(test)]
mod tests {
    use crate::checks::Finding;
    use crate::checks::testing::has;

    fn findings(dir: &str) -> Vec<Finding> {
        crate::checks::testing::findings(dir, "CAL050")
    }

    #[test]
    fn the_demo_end_of_tier_drops_are_mapped_to_the_pod_and_the_policy_it_evaluated() {
        let found = findings("testdata/bundles/calico-bundle-demo-20261125T140215Z");
        assert_eq!(found.len(), 2, "{found:#?}");
        let web = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-1"))
            .expect("node-1 drop");
        assert!(has(web, "endpoint", "demo/web"));
        assert!(has(web, "ip", "10.65.0.7"));
        assert!(has(web, "chain", "cali-tw-cali46b6bee22de"));
        assert!(has(web, "policy", "demo/knp.default.trace-test"));
        assert_eq!(web.evidence[0].path, "nodes/node-1/iptables-save.txt");
        assert_eq!(web.evidence[0].line, 92);
        assert!(
            web.evidence[0]
                .excerpt
                .starts_with("[72:4320] -A cali-tw-cali46b6bee22de")
        );
        assert!(web.title.contains("tier default"), "{}", web.title);
        let backend = found
            .iter()
            .find(|f| f.node.as_deref() == Some("node-2"))
            .expect("node-2 drop");
        assert!(has(backend, "endpoint", "demo/backend"));
        assert!(has(backend, "policy", "demo/allow-to-backend"));
        assert_eq!(backend.evidence[0].line, 84);
        assert!(backend.message.contains("45 packets (2700 bytes)"));
        assert_eq!(
            backend.confirm.as_deref(),
            Some(
                "iptables-save -c -t filter | grep -- '-A cali-tw-cali6793bd60945 '   # on node-2"
            )
        );
    }

    #[test]
    fn a_counted_no_profile_drop_names_the_endpoint_and_its_profiles() {
        let found = findings("testdata/checks/CAL050-no-profile-matched");
        let f = found
            .iter()
            .find(|f| has(f, "chain", "cali-fw-cali0e8ee4fc632"))
            .expect("no-profile drop on client egress");
        assert_eq!(f.node.as_deref(), Some("node-1"));
        assert!(has(f, "endpoint", "demo/client"));
        assert!(has(f, "ip", "10.65.0.8"));
        assert!(has(f, "profile", "kns.demo"));
        assert!(has(f, "profile", "ksa.demo.default"));
        assert!(f.message.contains("egress of demo/client"), "{}", f.message);
        assert_eq!(f.evidence[0].path, "nodes/node-1/iptables-save.txt");
        assert_eq!(f.evidence[0].line, 59);
        assert!(
            f.evidence[0]
                .excerpt
                .contains("Drop if no profiles matched")
        );
    }

    #[test]
    fn an_unknown_interface_drop_names_the_route_felix_does_not_dispatch() {
        let found = findings("testdata/checks/CAL050-unknown-interface");
        let f = found
            .iter()
            .find(|f| has(f, "chain", "cali-to-wl-dispatch"))
            .expect("unknown interface drop");
        assert_eq!(f.node.as_deref(), Some("node-2"));
        assert!(has(f, "ip", "10.65.1.9"), "{:?}", f.subjects);
        assert!(f.message.contains("califfe7f1a3c4d"), "{}", f.message);
        assert_eq!(f.evidence[0].path, "nodes/node-2/iptables-save.txt");
        assert_eq!(f.evidence[0].line, 77);
        assert_eq!(f.evidence[1].path, "nodes/node-2/ip-route.txt");
        assert_eq!(f.evidence[1].line, 7);
        // The pod routes Felix does dispatch are not suspects.
        assert!(!f.message.contains("cali6793bd60945"), "{}", f.message);
    }
}
