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
        let mut order = v4_net_order(members).unwrap_or_else(|| keyed_order(members));
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

/// Bits of a packed key that hold a member's position (reversed).
const POS_BITS: u32 = 26;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

/// Member order, unique, last occurrence kept, for a set whose members are all IPv4
/// addresses or networks (nearly every Calico set): each member packed into one integer,
/// address above prefix above reversed position, so that a plain integer sort gives member
/// order with later lines first among equals. `None` for any other set, or one too large
/// for the packing.
fn v4_net_order(members: &[ipset::Member]) -> Option<Vec<u32>> {
    if members.len() as u64 > POS_MASK {
        return None;
    }
    let mut keys = Vec::with_capacity(members.len());
    for (pos, m) in members.iter().enumerate() {
        let Member::Net {
            addr: Addr::V4(a),
            prefix,
        } = m.key
        else {
            return None;
        };
        // Six bits of prefix: 0..=32 always fits; anything else is not from a parse.
        if prefix > 32 {
            return None;
        }
        keys.push(
            (u64::from(u32::from_be_bytes(a)) << 32)
                | (u64::from(prefix) << POS_BITS)
                | (POS_MASK - pos as u64),
        );
    }
    keys.sort_unstable();
    keys.dedup_by_key(|k| *k >> POS_BITS);
    Some(
        keys.iter()
            .map(|k| (POS_MASK - (k & POS_MASK)) as u32)
            .collect(),
    )
}

/// Member order, unique, last occurrence kept, for any set: sorted on a key computed once
/// per member that never orders two members against their own order ([`sort_key`]), the
/// members themselves compared only where keys tie.
fn keyed_order(members: &[ipset::Member]) -> Vec<u32> {
    let n = u32::try_from(members.len()).unwrap_or(u32::MAX);
    let mut keyed: Vec<(u64, u32)> = (0..n)
        .map(|i| (sort_key(&members[i as usize].key), i))
        .collect();
    let elem = |k: u32| &members[k as usize].key;
    // Last occurrence wins: later positions first among equals, then dedup keeps it.
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| elem(a.1).cmp(elem(b.1)))
            .then(b.1.cmp(&a.1))
    });
    keyed.dedup_by(|b, a| a.0 == b.0 && elem(a.1) == elem(b.1));
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// A key that never contradicts member order (`a < b` implies `key(a) <= key(b)`), and tells
/// most members apart: the kind in the top two bits (networks, then `ip,port` elements, then
/// texts), then IPv4 before IPv6, then the address, prefix or protocol and port where they
/// fit, the leading 61 bits of an IPv6 address, or the first 7 bytes of a text.
fn sort_key(m: &Member) -> u64 {
    const NET: u64 = 0;
    const PORT: u64 = 1 << 62;
    const TEXT: u64 = 2 << 62;
    const V6: u64 = 1 << 61;
    let v6_head = |a: &[u8; 16]| (u128::from_be_bytes(*a) >> 67) as u64;
    match m {
        Member::Net {
            addr: Addr::V4(a),
            prefix,
        } => NET | (u64::from(u32::from_be_bytes(*a)) << 8) | u64::from(*prefix),
        Member::Net {
            addr: Addr::V6(a), ..
        } => NET | V6 | v6_head(a),
        Member::Port {
            addr: Addr::V4(a),
            proto,
            port,
        } => {
            PORT | (u64::from(u32::from_be_bytes(*a)) << 24)
                | (u64::from(*proto) << 16)
                | u64::from(*port)
        }
        Member::Port {
            addr: Addr::V6(a), ..
        } => PORT | V6 | v6_head(a),
        Member::Text(t) => {
            let mut head = [0u8; 8];
            for (d, s) in head[1..].iter_mut().zip(t.as_bytes()) {
                *d = *s;
            }
            TEXT | u64::from_be_bytes(head)
        }
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
    fn ipv4_members_print_as_the_standard_library_prints_addresses() {
        let parts = [
            0u8, 1, 9, 10, 11, 99, 100, 101, 109, 110, 199, 200, 249, 250, 255,
        ];
        for a in parts {
            for b in parts {
                let octets = [a, b, 255 - a, b / 2];
                let ip = std::net::Ipv4Addr::from(octets);
                for prefix in 0..=32u8 {
                    let m = Member::Net {
                        addr: Addr::V4(octets),
                        prefix,
                    };
                    let want = if prefix == 32 {
                        ip.to_string()
                    } else {
                        format!("{ip}/{prefix}")
                    };
                    assert_eq!(m.to_string(), want);
                }
            }
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

    /// The order members had before addresses compared as integers: the derived one, the
    /// variant first, then the fields in turn, addresses as byte strings.
    fn old_cmp(a: &Member, b: &Member) -> std::cmp::Ordering {
        fn addr(a: &Addr) -> (u8, &[u8]) {
            match a {
                Addr::V4(o) => (0, o),
                Addr::V6(o) => (1, o),
            }
        }
        match (a, b) {
            (Member::Net { addr: x, prefix: p }, Member::Net { addr: y, prefix: q }) => {
                addr(x).cmp(&addr(y)).then(p.cmp(q))
            }
            (
                Member::Port {
                    addr: x,
                    proto: p,
                    port: o,
                },
                Member::Port {
                    addr: y,
                    proto: q,
                    port: r,
                },
            ) => addr(x).cmp(&addr(y)).then(p.cmp(q)).then(o.cmp(r)),
            (Member::Text(x), Member::Text(y)) => x.cmp(y),
            _ => {
                let kind = |m: &Member| match m {
                    Member::Net { .. } => 0,
                    Member::Port { .. } => 1,
                    Member::Text(_) => 2,
                };
                kind(a).cmp(&kind(b))
            }
        }
    }

    /// `DumpedMembers::new` as it was: positions sorted by the old order, later lines first
    /// among equals, duplicates dropped.
    fn old_order(members: &[ipset::Member]) -> Vec<(String, usize)> {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| old_cmp(&members[a].key, &members[b].key).then(b.cmp(&a)));
        order.dedup_by(|b, a| members[*a].key == members[*b].key);
        order
            .into_iter()
            .map(|k| (members[k].key.to_string(), members[k].line as usize))
            .collect()
    }

    /// Member texts of every kind, few enough distinct ones that duplicates are common.
    fn member_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..4u8, 0..4u8, prop_oneof![Just(32u8), 0..33u8])
                .prop_map(|(a, b, p)| format!("10.{a}.0.{b}/{p}")),
            2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| format!("{a}.0.0.{b}")),
            1 => (0..3u16, prop_oneof![Just(128u8), 0..129u8])
                .prop_map(|(a, p)| format!("fd00::{a:x}/{p}")),
            1 => (0..3u16).prop_map(|a| format!("{a:x}::1")),
            1 => (0..3u8, "tcp|udp|sctp|weird", 0..3u16)
                .prop_map(|(a, pr, po)| format!("10.0.0.{a},{pr}:{po}")),
            1 => (0..3u16, "tcp|udp").prop_map(|(a, pr)| format!("fd00::{a},{pr}:53")),
            1 => "[a-c]{0,9}",
            1 => Just("cali40s:abcdefgh".to_string()),
            1 => Just("cali40s:abcdefgi".to_string()),
        ]
    }

    fn parsed(texts: &[String], v4_only: bool) -> Vec<ipset::Member> {
        texts
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                !v4_only
                    || matches!(
                        Member::parse(t),
                        Member::Net {
                            addr: Addr::V4(_),
                            ..
                        }
                    )
            })
            .map(|(i, t)| ipset::Member::new(t, i + 1, Vec::new()))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, ..Default::default() })]

        #[test]
        fn dumped_members_order_as_sorting_by_the_old_comparison_did(
            texts in proptest::collection::vec(member_text(), 0..120)
        ) {
            for v4_only in [true, false] {
                let members = parsed(&texts, v4_only);
                let d = DumpedMembers::new(&members);
                let got: Vec<(String, usize)> =
                    d.iter().map(|(m, line)| (m.to_string(), line)).collect();
                proptest::prop_assert_eq!(got, old_order(&members));
            }
        }

        #[test]
        fn the_sort_key_never_contradicts_member_order(
            texts in proptest::collection::vec(member_text(), 2..40)
        ) {
            let members: Vec<Member> = texts.iter().map(|t| Member::parse(t)).collect();
            for a in &members {
                for b in &members {
                    proptest::prop_assert_eq!(a.cmp(b), old_cmp(a, b));
                    if a < b {
                        proptest::prop_assert!(sort_key(a) <= sort_key(b), "{} {}", a, b);
                    }
                }
            }
        }

        #[test]
        fn diff_finds_what_a_set_comparison_finds(
            want in proptest::collection::vec(member_text(), 0..60),
            have in proptest::collection::vec(member_text(), 0..60),
        ) {
            let expected = ExpectedMembers::new(
                want.iter()
                    .enumerate()
                    .map(|(i, t)| (Member::parse(t), Source::Endpoint(i as u32)))
                    .collect(),
                true,
            );
            let members = parsed(&have, false);
            let dumped = DumpedMembers::new(&members);
            let Diff { missing, stale } = diff(&expected, &dumped);
            let dumped_texts: std::collections::BTreeSet<String> =
                members.iter().map(|m| m.key.to_string()).collect();
            let expected_texts: std::collections::BTreeSet<String> =
                want.iter().map(|t| Member::parse(t).to_string()).collect();
            let mut missing: Vec<String> = missing.iter().map(|e| e.0.to_string()).collect();
            missing.sort();
            let want_missing: Vec<String> =
                expected_texts.difference(&dumped_texts).cloned().collect();
            proptest::prop_assert_eq!(missing, want_missing);
            // Stale members with the last line that added them.
            let mut stale: Vec<(String, usize)> =
                stale.iter().map(|(m, l)| (m.to_string(), *l)).collect();
            stale.sort();
            let want_stale: Vec<(String, usize)> = dumped_texts
                .difference(&expected_texts)
                .map(|t| {
                    let line = members.iter().filter(|m| m.key.to_string() == *t).map(|m| m.line as usize).max().unwrap_or(0);
                    (t.clone(), line)
                })
                .collect();
            proptest::prop_assert_eq!(stale, want_stale);
        }
    }
}
