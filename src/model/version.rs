//! Which Calico version (family) produced the dumps, and which dataplane is in use. Felix's
//! names changed between versions, so the analysis must know which to recompute; it says which
//! version it assumed and why.
//!
//! Sources, most trusted first: ClusterInformation's `calicoVersion`, the version Felix logs at
//! start, then the shapes of the chains (the policy-naming comment appeared in v3.22 and
//! changed form in v3.32; "Start of tier" rules arrived with v3.29 and "End of tier" ones
//! with v3.30). Without any of those the newest version is assumed, and the report says so.

use super::Resources;
use crate::bundle::Bundle;
use crate::calico::names::CalicoVersion;
use crate::parse::Parsed;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: CalicoVersion,
    /// The version as the bundle spelled it (`v3.30.2`), or the family assumed.
    pub text: String,
    /// Why: which artifact and line told it, or that it was assumed.
    pub source: String,
    /// True when nothing in the bundle told the version.
    pub assumed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    Iptables,
    Nftables,
    Bpf,
}

impl Dataplane {
    pub fn as_str(self) -> &'static str {
        match self {
            Dataplane::Iptables => "iptables",
            Dataplane::Nftables => "nftables",
            Dataplane::Bpf => "bpf",
        }
    }
}

pub fn detect(bundle: &Bundle, r: &Resources<'_>) -> VersionInfo {
    for ci in &r.cluster_informations {
        let v = ci.item.calico_version.trim();
        if let Some(version) = CalicoVersion::parse(v) {
            return VersionInfo {
                version,
                text: v.to_string(),
                source: format!(
                    "ClusterInformation {} says calicoVersion {v} ({}:{})",
                    ci.item.meta.name, ci.path, ci.item.meta.line
                ),
                assumed: false,
            };
        }
    }
    for a in &bundle.artifacts {
        if let Parsed::FelixLog(log) = &a.parsed
            && let Some((text, line)) = log_version(log)
            && let Some(version) = CalicoVersion::parse(&text)
        {
            return VersionInfo {
                version,
                text: text.clone(),
                source: format!("Felix logged version {text} ({}:{line})", a.path),
                assumed: false,
            };
        }
    }
    if let Some(info) = from_chain_shapes(bundle) {
        return info;
    }
    VersionInfo {
        version: CalicoVersion::NEWEST,
        text: format!(
            "v{}.{}",
            CalicoVersion::NEWEST.major,
            CalicoVersion::NEWEST.minor
        ),
        source: "nothing in the bundle tells the Calico version; the newest is assumed".into(),
        assumed: true,
    }
}

/// The version family the rule comments of an iptables dump betray.
fn from_chain_shapes(bundle: &Bundle) -> Option<VersionInfo> {
    let mut kind_comment = None;
    let mut policy_comment = None;
    let mut end_of_tier = None;
    let mut start_of_tier = None;
    let mut any_policy_chain = None;
    for a in &bundle.artifacts {
        let Parsed::Iptables(dump) = &a.parsed else {
            continue;
        };
        for (_, chain, rule) in dump.rules() {
            let at = || format!("{}:{}", a.path, rule.line);
            if chain.name.starts_with("cali-pi-") || chain.name.starts_with("cali-po-") {
                any_policy_chain.get_or_insert_with(at);
                for c in &rule.comments {
                    if c.starts_with("Policy ") {
                        policy_comment.get_or_insert_with(at);
                    } else if [
                        "NetworkPolicy ",
                        "GlobalNetworkPolicy ",
                        "KubernetesNetworkPolicy ",
                    ]
                    .iter()
                    .any(|k| c.starts_with(k))
                    {
                        kind_comment.get_or_insert_with(at);
                    }
                }
            }
            for c in &rule.comments {
                if c.starts_with("End of tier ") {
                    end_of_tier.get_or_insert_with(at);
                } else if c.starts_with("Start of tier ") {
                    start_of_tier.get_or_insert_with(at);
                }
            }
        }
    }
    let (v, why) = if let Some(at) = kind_comment {
        (
            (3, 32),
            format!("policy chains are named by kind (v3.32+), e.g. {at}"),
        )
    } else if let Some(at) = end_of_tier {
        (
            (3, 30),
            format!("\"End of tier\" rules (v3.30/v3.31) with v1 policy comments, e.g. {at}"),
        )
    } else if let Some(at) = start_of_tier {
        (
            (3, 29),
            format!("\"Start of tier\" rules without \"End of tier\" (v3.29), e.g. {at}"),
        )
    } else if let Some(at) = policy_comment {
        (
            (3, 28),
            format!("\"Policy <name>\" comments without tier rules (v3.22–v3.28), e.g. {at}"),
        )
    } else if let Some(at) = any_policy_chain {
        (
            (3, 21),
            format!("policy chains without naming comments (≤ v3.21), e.g. {at}"),
        )
    } else {
        return None;
    };
    Some(VersionInfo {
        version: CalicoVersion::new(v.0, v.1),
        text: format!("v{}.{} family", v.0, v.1),
        source: format!("inferred from chain shapes: {why}"),
        assumed: false,
    })
}

/// The dataplane, from the FelixConfiguration or, failing that, from what was captured.
pub fn dataplane(bundle: &Bundle, r: &Resources<'_>) -> Option<Dataplane> {
    if let Some(fc) = r.felix_default() {
        if fc.item.bpf_enabled() == Some(true) {
            return Some(Dataplane::Bpf);
        }
        if fc
            .item
            .nftables_mode()
            .is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
        {
            return Some(Dataplane::Nftables);
        }
    }
    let mut iptables = false;
    let mut nft = false;
    let mut bpf = false;
    for a in &bundle.artifacts {
        match &a.parsed {
            Parsed::Iptables(d) => {
                iptables |= d
                    .tables
                    .iter()
                    .any(|t| t.chains.iter().any(|c| c.name.starts_with("cali-")));
            }
            Parsed::Nft(rs) => nft |= rs.tables.iter().any(|t| t.name == "calico"),
            Parsed::Bpf(_) => bpf = true,
            _ => {}
        }
    }
    if nft {
        Some(Dataplane::Nftables)
    } else if iptables {
        Some(Dataplane::Iptables)
    } else if bpf {
        Some(Dataplane::Bpf)
    } else {
        None
    }
}

fn log_version(log: &crate::parse::felix_log::Log) -> Option<(String, usize)> {
    log.versions
        .iter()
        .find(|m| CalicoVersion::parse(&m.version).is_some())
        .map(|m| (m.version.clone(), m.line))
}
