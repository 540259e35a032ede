//! The per-node tables of the report (endpoints → ordered policies, policies → chains with
//! counters, IP sets → expected/actual members), read off the model.

use super::{ChainDetail, EndpointDetail, IpsetDetail, NodeDetail, PolicyDetail};
use crate::calico::names::Direction;
use rayon::prelude::*;

use crate::model::Model;
use crate::model::member::{self, Member};
use crate::model::node::Owner;

/// How many differing members an IP set row lists before it only counts.
const MEMBERS_LISTED: usize = 50;

/// The first members in text order (the order the table lists them in). Each member is
/// written into one buffer and kept only while it is among the first: a set with no dump
/// lists a few of its expected members, however many it has.
fn listed<'a>(members: impl Iterator<Item = &'a Member>) -> Vec<String> {
    use std::fmt::Write;
    // Most rows list nothing: no room is taken before a member comes.
    let mut first: std::collections::BinaryHeap<String> = std::collections::BinaryHeap::new();
    let mut text = String::new();
    for m in members {
        text.clear();
        let _ = write!(text, "{m}");
        if first.len() < MEMBERS_LISTED {
            first.push(text.clone());
        } else if let Some(mut last) = first.peek_mut()
            && text < *last
        {
            last.clone_from(&text);
        }
    }
    let mut listed = first.into_sorted_vec();
    // Rows live until the report is written.
    listed.shrink_to_fit();
    listed
}

pub fn nodes_detail(m: &Model<'_>) -> Vec<NodeDetail> {
    m.nodes
        .par_iter()
        .map(|node| {
            let owner_name = |o: &Owner| match o {
                Owner::Policy(p) => m.policies[*p].display.clone(),
                Owner::Profile(p) => format!("profile {p}"),
                Owner::Unknown(c) => c.clone(),
            };
            let endpoints = node
                .local_endpoints
                .iter()
                .map(|&ei| {
                    let e = &m.endpoints[ei];
                    let dir = |d: Direction| {
                        node.endpoint_chains
                            .iter()
                            .find(|c| c.endpoint == ei && c.direction == d)
                            .map(|c| {
                                c.expected
                                    .iter()
                                    .filter(|o| matches!(o, Owner::Policy(_)))
                                    .map(owner_name)
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    EndpointDetail {
                        name: e.key.clone(),
                        interface: e.iface.clone(),
                        ips: e.ips.iter().map(|n| n.to_string()).collect(),
                        ingress: dir(Direction::Ingress),
                        egress: dir(Direction::Egress),
                        profiles: e.profiles.clone(),
                    }
                })
                .collect();
            let policies = node
                .active_policies
                .iter()
                .map(|&pi| PolicyDetail {
                    policy: m.policies[pi].display.clone(),
                    chains: node
                        .policy_chains
                        .iter()
                        .filter(|c| c.policy == pi)
                        .map(|c| {
                            let chain = node.find_chain(&c.chain).map(|(_, ch)| ch);
                            let counted = chain
                                .map(|ch| {
                                    ch.rules
                                        .iter()
                                        .filter_map(|r| r.counters)
                                        .collect::<Vec<_>>()
                                })
                                .filter(|v| !v.is_empty());
                            ChainDetail {
                                name: c.chain.clone(),
                                direction: Some(
                                    match c.direction {
                                        Direction::Ingress => "ingress",
                                        Direction::Egress => "egress",
                                    }
                                    .to_string(),
                                ),
                                present: c.found,
                                rules: chain.map(|ch| ch.rules.len()).unwrap_or(0),
                                packets: counted
                                    .as_ref()
                                    .map(|v| v.iter().map(|x| x.packets).sum()),
                                bytes: counted.as_ref().map(|v| v.iter().map(|x| x.bytes).sum()),
                                path: c
                                    .found
                                    .then(|| node.iptables.map(|d| d.path().to_string()))
                                    .flatten(),
                                line: c.found.then_some(c.line),
                            }
                        })
                        .collect(),
                })
                .collect();
            let ipsets = node
                .expected_sets
                .values()
                .map(|s| {
                    let actual = node.actual_set(&s.name);
                    let (missing, stale, actual_count) = match &actual {
                        Some(a) => {
                            let member::Diff { missing, stale } =
                                member::diff(&s.members, a.members);
                            (
                                listed(missing.iter().map(|(k, _)| k)),
                                listed(stale.iter().map(|(k, _)| *k)),
                                a.members.len(),
                            )
                        }
                        None => (listed(s.members.iter().map(|(k, _)| k)), Vec::new(), 0),
                    };
                    IpsetDetail {
                        name: s.name.clone(),
                        selector: Some(s.selector.clone()),
                        present: actual.is_some(),
                        expected_count: s.members.len(),
                        actual_count,
                        missing,
                        stale,
                    }
                })
                .collect();
            NodeDetail {
                node: node.name.clone(),
                endpoints,
                policies,
                ipsets,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_listed_first_in_text_order_up_to_the_limit() {
        let members: Vec<Member> = (1..=120)
            .rev()
            .map(|i| Member::parse(&format!("10.0.0.{i}")))
            .collect();
        let got = listed(members.iter());
        assert_eq!(got.len(), MEMBERS_LISTED);
        // Text order: 10.0.0.1, 10.0.0.10, 10.0.0.100 … 10.0.0.109, 10.0.0.11, 10.0.0.110 …
        assert_eq!(
            got[..4],
            ["10.0.0.1", "10.0.0.10", "10.0.0.100", "10.0.0.101"]
        );
        let mut all: Vec<String> = members.iter().map(Member::to_string).collect();
        all.sort();
        assert_eq!(got, all[..MEMBERS_LISTED]);
        assert!(!got.contains(&"10.0.0.9".to_string()));
        // Fewer than the limit: all of them, sorted; duplicates kept.
        let few = [&members[0], &members[5], &members[0]];
        assert_eq!(
            listed(few.into_iter()),
            ["10.0.0.115", "10.0.0.120", "10.0.0.120"]
        );
        assert!(listed(std::iter::empty()).is_empty());
    }
}
