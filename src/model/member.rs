//! IP set members in a compact, comparable form. An address or CIDR is kept as integers
//! (normalised the way ipset prints it: a host network is the bare address, a CIDR has its
//! host bits cleared), a `hash:ip,port` element as address, protocol and port, and anything
//! else as its text. Each member prints exactly as `ipset save` writes it, and two members are
//! equal exactly when those texts are equal, so sets can be compared by merging sorted
//! vectors instead of through string-keyed maps.
//!
//! The element type itself is [`ipset::Elem`]: the parser stores each member once in this
//! form (with the text as written only when it prints otherwise), and [`DumpedMembers`] is an
//! order over the parsed members, not a copy of them. The order ([`Ord`]) is numeric, not
//! textual: what is shown to a reader is re-sorted by text ([`sort_by_text`]) so that
//! listings keep their textual order.

use crate::parse::ipset;

/// The compact element type lives with the parser, so a dump's members are parsed into it
/// once and the model compares them where they are.
pub use crate::parse::ipset::{Addr, Elem as Member};

/// Sort items by the text of their member (the order a string-keyed map would give), for
/// what a finding or a table lists.
pub fn sort_by_text<T>(items: &mut [T], member: impl Fn(&T) -> &Member) {
    let mut keyed: Vec<(String, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (member(t).to_string(), i))
        .collect();
    keyed.sort();
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    apply_order(items, order);
}

/// Put `items[order[k]]` at position k.
fn apply_order<T>(items: &mut [T], mut order: Vec<usize>) {
    for k in 0..order.len() {
        // Follow the cycle starting at k, swapping each element into place.
        let mut cur = k;
        while order[cur] != k {
            let next = order[cur];
            items.swap(cur, next);
            order[cur] = cur;
            cur = next;
        }
        order[cur] = cur;
    }
}

/// Who contributes an expected member: an endpoint or a network set, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Endpoint(u32),
    NetSet(u32),
}

/// What a set should hold: members sorted and unique, each with the endpoint or network set
/// that contributes it. Shared between nodes (it depends only on the selector).
#[derive(Debug, Clone, Default)]
pub struct ExpectedMembers {
    entries: Vec<(Member, Source)>,
}

impl ExpectedMembers {
    /// From members in contribution order; for a member contributed twice, `first_wins`
    /// keeps the first contributor, otherwise the last.
    pub fn new(mut entries: Vec<(Member, Source)>, first_wins: bool) -> ExpectedMembers {
        if !first_wins {
            entries.reverse();
        }
        // Stable: among equal members the preferred contributor comes first and is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|b, a| a.0 == b.0);
        ExpectedMembers { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// In member order (numeric, not textual).
    pub fn iter(&self) -> impl Iterator<Item = &(Member, Source)> {
        self.entries.iter()
    }

    pub fn contains(&self, m: &Member) -> bool {
        self.entries.binary_search_by(|e| e.0.cmp(m)).is_ok()
    }
}

/// A dumped set's members, sorted and unique, each with the line that added it (the last
/// line when a member appears twice): positions into the parsed set's members, in member
/// order.
#[derive(Debug, Clone, Default)]
pub struct DumpedMembers<'b> {
    members: &'b [ipset::Member],
    order: Vec<u32>,
}

impl<'b> DumpedMembers<'b> {
    /// Over a set's members in dump order.
    pub fn new(members: &'b [ipset::Member]) -> DumpedMembers<'b> {
        let n = u32::try_from(members.len()).unwrap_or(u32::MAX);
        let mut order: Vec<u32> = (0..n).collect();
        // Last occurrence wins: later positions first among equals, then dedup keeps it.
        order.sort_unstable_by(|&a, &b| {
            members[a as usize]
                .key
                .cmp(&members[b as usize].key)
                .then(b.cmp(&a))
        });
        order.dedup_by(|b, a| members[*a as usize].key == members[*b as usize].key);
        order.shrink_to_fit();
        DumpedMembers { members, order }
    }

    fn entry(&self, k: u32) -> (&'b Member, usize) {
        let m = &self.members[k as usize];
        (&m.key, m.line as usize)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// `(member, line)` in member order (numeric, not textual).
    pub fn iter(&self) -> impl Iterator<Item = (&'b Member, usize)> + '_ {
        self.order.iter().map(|&k| self.entry(k))
    }

    pub fn contains(&self, m: &Member) -> bool {
        self.order
            .binary_search_by(|&k| self.members[k as usize].key.cmp(m))
            .is_ok()
    }
}

/// How a dumped set differs from what it should hold, in member order.
#[derive(Debug, Default)]
pub struct Diff<'e, 'd> {
    /// Expected members the dump lacks, with their contributor.
    pub missing: Vec<&'e (Member, Source)>,
    /// Dumped members not expected, with their line.
    pub stale: Vec<(&'d Member, usize)>,
}

/// Expected members the dump lacks, and dumped members not expected: one merge of the two
/// sorted lists.
pub fn diff<'e, 'd>(expected: &'e ExpectedMembers, dumped: &DumpedMembers<'d>) -> Diff<'e, 'd> {
    let (mut missing, mut stale) = (Vec::new(), Vec::new());
    let (e, d) = (&expected.entries, &dumped.order);
    let (mut i, mut j) = (0, 0);
    while i < e.len() && j < d.len() {
        let (dm, line) = dumped.entry(d[j]);
        match e[i].0.cmp(dm) {
            std::cmp::Ordering::Less => {
                missing.push(&e[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                stale.push((dm, line));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    missing.extend(&e[i..]);
    stale.extend(d[j..].iter().map(|&k| dumped.entry(k)));
    Diff { missing, stale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn dumped(members: &[(&str, usize)]) -> Vec<ipset::Member> {
        members
            .iter()
            .map(|(v, line)| ipset::Member::new(v, *line, Vec::new()))
            .collect()
    }

    #[test]
    fn members_print_as_ipset_save_writes_them() {
        // `ipset save` writes a host as the bare address and a network as its prefix with
        // the host bits cleared; anything else (named-port elements, ranges, set names) is
        // compared as written.
        for (v, want) in [
            ("10.0.0.1", "10.0.0.1"),
            ("10.0.0.1/32", "10.0.0.1"),
            ("10.0.0.5/24", "10.0.0.0/24"),
            ("10.0.0.0/24", "10.0.0.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            (" 192.168.1.7 ", "192.168.1.7"),
            ("fd00::1", "fd00::1"),
            ("fd00::1/128", "fd00::1"),
            ("fd00::1:2/64", "fd00::/64"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
            ("10.244.0.17,tcp:53", "10.244.0.17,tcp:53"),
            ("fd00::17,udp:5353", "fd00::17,udp:5353"),
            ("10.244.0.17,tcp:053", "10.244.0.17,tcp:053"),
            ("10.244.0.17,tcp:70000", "10.244.0.17,tcp:70000"),
            ("10.244.0.17,bogus:53", "10.244.0.17,bogus:53"),
            ("10.0.0.1-10.0.0.9", "10.0.0.1-10.0.0.9"),
            ("cali40s:abc", "cali40s:abc"),
            ("eth0", "eth0"),
        ] {
            assert_eq!(Member::parse(v).to_string(), want, "{v:?}");
        }
    }

    #[test]
    fn hosts_and_cidrs_normalise_like_ipset_prints_them() {
        assert_eq!(Member::parse("10.0.0.1/32"), Member::parse("10.0.0.1"));
        assert_eq!(Member::parse("10.0.0.5/24"), Member::parse("10.0.0.0/24"));
        assert_ne!(Member::parse("10.0.0.0/24"), Member::parse("10.0.0.0/25"));
        assert_eq!(Member::parse("fd00::1/128").to_string(), "fd00::1");
        assert_eq!(Member::parse("fd00::1:2/64").to_string(), "fd00::/64");
        let net: IpNet = "10.1.2.3/16".parse().unwrap();
        assert_eq!(Member::from_net(&net).to_string(), "10.1.0.0/16");
        assert_eq!(
            Member::from_net(&net).net(),
            Some("10.1.0.0/16".parse().unwrap())
        );
    }

    #[test]
    fn named_port_members_equal_exactly_when_their_texts_do() {
        let a = Member::port("10.244.0.17".parse().unwrap(), "tcp", 53);
        assert_eq!(a.to_string(), "10.244.0.17,tcp:53");
        assert_eq!(Member::parse("10.244.0.17,tcp:53"), a);
        assert!(matches!(a, Member::Port { .. }));
        // A zero-padded port is another text, so another member.
        assert_ne!(Member::parse("10.244.0.17,tcp:053"), a);
        assert_ne!(Member::parse("10.244.0.17,udp:53"), a);
        let odd = Member::port("10.244.0.17".parse().unwrap(), "weird", 53);
        assert_eq!(odd, Member::parse("10.244.0.17,weird:53"));
        assert_eq!(odd.to_string(), "10.244.0.17,weird:53");
    }

    #[test]
    fn order_is_numeric_and_text_order_is_restored_for_listing() {
        let mut v: Vec<Member> = ["10.0.0.10", "10.0.0.2", "9.0.0.1", "10.0.0.0/8"]
            .iter()
            .map(|s| Member::parse(s))
            .collect();
        v.sort();
        let shown: Vec<String> = v.iter().map(Member::to_string).collect();
        assert_eq!(shown, ["9.0.0.1", "10.0.0.0/8", "10.0.0.2", "10.0.0.10"]);
        sort_by_text(&mut v, |m| m);
        let shown: Vec<String> = v.iter().map(Member::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "10.0.0.10", "10.0.0.2", "9.0.0.1"]);
    }

    #[test]
    fn duplicates_keep_the_first_contributor_or_the_last_line() {
        let e = ExpectedMembers::new(
            vec![
                (Member::parse("10.0.0.1"), Source::Endpoint(3)),
                (Member::parse("10.0.0.1/32"), Source::NetSet(0)),
            ],
            true,
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e.iter().next().map(|x| x.1), Some(Source::Endpoint(3)));
        let e = ExpectedMembers::new(
            vec![
                (Member::parse("10.0.0.1"), Source::Endpoint(3)),
                (Member::parse("10.0.0.1"), Source::Endpoint(5)),
            ],
            false,
        );
        assert_eq!(e.iter().next().map(|x| x.1), Some(Source::Endpoint(5)));
        let dump = dumped(&[("10.0.0.1", 4), ("10.0.0.1/32", 9)]);
        let d = DumpedMembers::new(&dump);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            [(&Member::parse("10.0.0.1"), 9)]
        );
    }

    #[test]
    fn diff_lists_what_is_lacking_and_what_is_extra() {
        let e = ExpectedMembers::new(
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
                .iter()
                .enumerate()
                .map(|(i, s)| (Member::parse(s), Source::Endpoint(i as u32)))
                .collect(),
            true,
        );
        let dump = dumped(&[("10.0.0.2", 1), ("10.0.0.9", 2)]);
        let d = DumpedMembers::new(&dump);
        let Diff { missing, stale } = diff(&e, &d);
        let missing: Vec<String> = missing.iter().map(|m| m.0.to_string()).collect();
        assert_eq!(missing, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(stale, [(&Member::parse("10.0.0.9"), 2)]);
        assert!(e.contains(&Member::parse("10.0.0.3")));
        assert!(!d.contains(&Member::parse("10.0.0.3")));
    }

    #[test]
    fn a_member_is_no_bigger_than_three_words() {
        assert!(std::mem::size_of::<Member>() <= 24);
    }
}
