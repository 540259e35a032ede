//! The artifact kinds, as the JSON report names them (`../shared` contract §3).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ArtifactKind {
    #[serde(rename = "iptables-save")]
    IptablesSave,
    #[serde(rename = "ip6tables-save")]
    Ip6tablesSave,
    #[serde(rename = "iptables-list")]
    IptablesList,
    #[serde(rename = "ipset-save")]
    IpsetSave,
    #[serde(rename = "ipset-list")]
    IpsetList,
    #[serde(rename = "nft-ruleset")]
    NftRuleset,
    #[serde(rename = "conntrack")]
    Conntrack,
    #[serde(rename = "conntrack-stats")]
    ConntrackStats,
    #[serde(rename = "felix-log")]
    FelixLog,
    #[serde(rename = "dmesg")]
    Dmesg,
    #[serde(rename = "calico-resources")]
    CalicoResources,
    #[serde(rename = "k8s-resources")]
    K8sResources,
    #[serde(rename = "sysctl")]
    Sysctl,
    #[serde(rename = "ip-route")]
    IpRoute,
    #[serde(rename = "ip-addr")]
    IpAddr,
    #[serde(rename = "bpf-json")]
    BpfJson,
    #[serde(rename = "calico-bpf-dump")]
    CalicoBpfDump,
    #[serde(rename = "hostname")]
    Hostname,
    #[serde(rename = "manifest")]
    Manifest,
    #[serde(rename = "unknown")]
    Unknown,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::IptablesSave => "iptables-save",
            ArtifactKind::Ip6tablesSave => "ip6tables-save",
            ArtifactKind::IptablesList => "iptables-list",
            ArtifactKind::IpsetSave => "ipset-save",
            ArtifactKind::IpsetList => "ipset-list",
            ArtifactKind::NftRuleset => "nft-ruleset",
            ArtifactKind::Conntrack => "conntrack",
            ArtifactKind::ConntrackStats => "conntrack-stats",
            ArtifactKind::FelixLog => "felix-log",
            ArtifactKind::Dmesg => "dmesg",
            ArtifactKind::CalicoResources => "calico-resources",
            ArtifactKind::K8sResources => "k8s-resources",
            ArtifactKind::Sysctl => "sysctl",
            ArtifactKind::IpRoute => "ip-route",
            ArtifactKind::IpAddr => "ip-addr",
            ArtifactKind::BpfJson => "bpf-json",
            ArtifactKind::CalicoBpfDump => "calico-bpf-dump",
            ArtifactKind::Hostname => "hostname",
            ArtifactKind::Manifest => "manifest",
            ArtifactKind::Unknown => "unknown",
        }
    }

    pub fn from_name(s: &str) -> Option<ArtifactKind> {
        ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

pub const ALL: &[ArtifactKind] = &[
    ArtifactKind::IptablesSave,
    ArtifactKind::Ip6tablesSave,
    ArtifactKind::IptablesList,
    ArtifactKind::IpsetSave,
    ArtifactKind::IpsetList,
    ArtifactKind::NftRuleset,
    ArtifactKind::Conntrack,
    ArtifactKind::ConntrackStats,
    ArtifactKind::FelixLog,
    ArtifactKind::Dmesg,
    ArtifactKind::CalicoResources,
    ArtifactKind::K8sResources,
    ArtifactKind::Sysctl,
    ArtifactKind::IpRoute,
    ArtifactKind::IpAddr,
    ArtifactKind::BpfJson,
    ArtifactKind::CalicoBpfDump,
    ArtifactKind::Hostname,
    ArtifactKind::Manifest,
    ArtifactKind::Unknown,
];
