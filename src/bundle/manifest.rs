//! `manifest.json` of a `calico-bundle/1` (see docs/bundle-format.md): which command produced
//! each file, on which node, and how it ended.

use serde::{Deserialize, Serialize};

use super::ArtifactKind;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Manifest {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub collected_at: Option<String>,
    #[serde(default)]
    pub collector_version: Option<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub commands: Vec<Command>,
}

/// One command the collector ran.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Command {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub name: String,
    /// The artifact kind (report names), when the collector states it.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub stderr_path: Option<String>,
    #[serde(default)]
    pub bytes: Option<u64>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        serde_json::from_str(text).map_err(|e| format!("manifest.json: line {}: {e}", e.line()))
    }

    /// The command that wrote `path` (a path relative to the bundle root).
    pub fn command_for(&self, path: &str) -> Option<&Command> {
        self.commands.iter().find(|c| c.path == path)
    }

    /// The kind the manifest gives the file at `path`, if it gives one.
    pub fn kind_for(&self, path: &str) -> Option<ArtifactKind> {
        let c = self.command_for(path)?;
        c.kind
            .as_deref()
            .and_then(ArtifactKind::from_name)
            .or_else(|| kind_of_command(&c.name))
    }
}

/// The artifact kind a collector command name stands for (contract §1 names).
pub fn kind_of_command(name: &str) -> Option<ArtifactKind> {
    let n = name.trim();
    Some(match n {
        "iptables-save" | "iptables-legacy-save" | "iptables-nft-save" => {
            ArtifactKind::IptablesSave
        }
        "ip6tables-save" | "ip6tables-legacy-save" | "ip6tables-nft-save" => {
            ArtifactKind::Ip6tablesSave
        }
        "ipset-save" => ArtifactKind::IpsetSave,
        "ipset-list" => ArtifactKind::IpsetList,
        "nft-ruleset" => ArtifactKind::NftRuleset,
        "conntrack" | "conntrack-list" => ArtifactKind::Conntrack,
        "conntrack-stats" => ArtifactKind::ConntrackStats,
        "felix-log" | "calico-node-log" => ArtifactKind::FelixLog,
        "dmesg" => ArtifactKind::Dmesg,
        "sysctl" => ArtifactKind::Sysctl,
        "ip-route" | "ip-route-v6" => ArtifactKind::IpRoute,
        "ip-addr" => ArtifactKind::IpAddr,
        "hostname" => ArtifactKind::Hostname,
        _ if n.starts_with("calico-") && n.ends_with("resources") => ArtifactKind::CalicoResources,
        _ if n.starts_with("bpftool") => ArtifactKind::BpfJson,
        _ if n.starts_with("calico-bpf") => ArtifactKind::CalicoBpfDump,
        _ => return None,
    })
}
