//! nft ruleset parser against fixtures under `testdata/artifacts/nft/` and, when present, the
//! shared corpus.

use std::path::{Path, PathBuf};

use calisnap::parse::nft::{self, Counters, Form, IfaceMatch, MarkMatch, Verdict};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/artifacts/nft")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Rules as a plain line filter counts them: `add|insert rule` lines, or the non-blank lines
/// inside `chain … {` blocks other than the `type … hook …` line and the closing brace.
fn count_rules(text: &str) -> usize {
    let mut n = 0;
    let mut in_chain = false;
    for l in text.lines().map(str::trim) {
        if l.starts_with("add rule ") || l.starts_with("insert rule ") {
            n += 1;
        } else if l.starts_with("chain ") && l.contains('{') {
            in_chain = true;
        } else if l.starts_with('}') {
            in_chain = false;
        } else if in_chain && !l.is_empty() && !(l.starts_with("type ") && l.contains(" hook ")) {
            n += 1;
        }
    }
    n
}

#[test]
fn calico_native_nft_dump_reads_chains_sets_and_rules() {
    let text = fixture("calico-fv-cali-nftables-dump.nft");
    let r = nft::parse(&text);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.form, Form::Listing);
    assert_eq!(r.records(), count_rules(&text));
    assert_eq!(r.records(), 62);
    let t = r.table("ip", "calico").expect("table ip calico");
    assert_eq!(t.line, 1);

    let host = t.set("cali40this-host").expect("set");
    assert_eq!(host.key_type.as_deref(), Some("ipv4_addr"));
    let elems: Vec<(usize, &str)> = host
        .elements
        .iter()
        .map(|e| (e.line, e.value.as_str()))
        .collect();
    assert_eq!(
        elems,
        [
            (4, "10.128.0.212"),
            (4, "127.0.0.0"),
            (5, "127.0.0.1"),
            (5, "192.168.122.1")
        ]
    );
    let pools = t.set("cali40network-ip-pools").expect("pools");
    assert_eq!(pools.flags, ["interval"]);
    let map = t.set("filter-cali-from-wl-dispatch").expect("map");
    assert!(map.is_map && map.elements.is_empty());
    assert_eq!(map.key_type.as_deref(), Some("ifname : verdict"));

    let post = t.chain("nat-POSTROUTING").expect("base chain");
    let base = post.base.as_ref().expect("hook");
    assert_eq!(
        (
            base.chain_type.as_str(),
            base.hook.as_str(),
            base.priority.as_str()
        ),
        ("nat", "postrouting", "srcnat + 10")
    );
    assert_eq!(base.policy.as_deref(), Some("accept"));
    assert!(
        t.chain("raw-cali-rpf-skip")
            .is_some_and(|c| c.base.is_none() && c.rules.is_empty())
    );

    let fwd = &t.chain("filter-FORWARD").expect("filter-FORWARD").rules;
    assert_eq!(fwd[0].jump_target(), Some("filter-cali-FORWARD"));
    assert_eq!(fwd[1].line, 57);
    assert_eq!(
        fwd[1].comment.as_deref(),
        Some("cali:yp7iNUYNEhDmKF6E; Policy explicitly accepted packet.")
    );
    assert_eq!(
        fwd[1].marks,
        [MarkMatch {
            value: 0x10000,
            mask: Some(0x10000),
            negated: false
        }]
    );
    assert_eq!(fwd[1].verdict, Some(Verdict::Accept));
    assert_eq!(fwd[2].verdict, None);
    assert_eq!(fwd[2].mark_sets, ["meta mark | 0x00010000"]);

    let masq = &t.chain("nat-cali-nat-outgoing").expect("chain").rules[0];
    assert_eq!(
        masq.set_refs,
        ["cali40masq-ipam-pools", "cali40network-ip-pools"]
    );
    assert_eq!(masq.verdict, Some(Verdict::Masquerade));

    let input = &t.chain("filter-cali-INPUT").expect("chain").rules;
    assert_eq!(
        input[2].verdict,
        Some(Verdict::Goto("filter-cali-wl-to-host".into()))
    );
    assert_eq!(
        input[2].ifaces,
        [IfaceMatch {
            out: false,
            negated: false,
            value: "cali*".into()
        }]
    );
    assert_eq!(
        input[0].counters,
        Some(Counters {
            packets: 69,
            bytes: 14902
        })
    );

    let dispatch = &t
        .chain("filter-cali-from-wl-dispatch")
        .expect("chain")
        .rules[0];
    assert_eq!(
        dispatch.verdict,
        Some(Verdict::Vmap("filter-cali-from-wl-dispatch".into()))
    );
    assert!(dispatch.ifaces.is_empty());

    // `ct status dnat` is a value, not a NAT statement.
    let post = &t.chain("mangle-cali-POSTROUTING").expect("chain").rules[2];
    assert_eq!(post.jump_target(), Some("mangle-cali-to-host-endpoint"));
    assert_eq!(
        post.counters,
        Some(Counters {
            packets: 409,
            bytes: 63048
        })
    );
}

#[test]
fn nft_command_form_is_flagged_and_builds_the_same_shape() {
    let text = fixture("calico-fv-foreign-nft-dump-issue13263.nft");
    let r = nft::parse(&text);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.form, Form::Commands);
    assert_eq!(r.records(), count_rules(&text));
    assert_eq!(r.comments.len(), 5);
    let filter = r.table("ip", "filter").expect("ip filter");
    // `add chain` order first, then base chains met only in `add rule`.
    assert_eq!(filter.chains[0].name, "nixos-fw-accept");
    let input = filter.chain("INPUT").expect("INPUT from add rule");
    assert_eq!(input.line, 58);
    assert_eq!(
        input
            .rules
            .iter()
            .filter_map(|x| x.jump_target())
            .collect::<Vec<_>>(),
        ["ts-input", "KUBE-FIREWALL", "nixos-fw"]
    );

    let ts = &filter.chain("ts-input").expect("ts-input").rules;
    assert_eq!(
        ts[3].ifaces,
        [IfaceMatch {
            out: false,
            negated: true,
            value: "tailscale0*".into()
        }]
    );
    assert_eq!(ts[3].verdict, Some(Verdict::Return));
    let fwd = &filter.chain("ts-forward").expect("ts-forward").rules;
    assert_eq!(fwd[0].mark_sets, ["meta mark & 0xffff04ff | 0x00000400"]);
    assert_eq!(
        fwd[1].marks,
        [MarkMatch {
            value: 0x400,
            mask: Some(0xff00),
            negated: false
        }]
    );

    let nat = r.table("ip", "nat").expect("ip nat");
    let dn = &nat
        .chain("CNI-DN-e39780ea08b399fa3bc03")
        .expect("chain")
        .rules[2];
    assert_eq!(dn.verdict, Some(Verdict::Dnat("10.42.233.49:25".into())));
    let hp = &nat.chain("CNI-HOSTPORT-DNAT").expect("chain").rules[0];
    assert_eq!(hp.jump_target(), Some("CNI-DN-e39780ea08b399fa3bc03"));
    let mangle_out = &r
        .table("ip", "mangle")
        .and_then(|t| t.chain("OUTPUT"))
        .expect("mangle OUTPUT")
        .rules[0];
    // `ct mark set meta mark & …` is not a packet-mark statement; the `!=` match is.
    assert!(mangle_out.mark_sets.is_empty());
    assert_eq!(
        mangle_out.marks,
        [MarkMatch {
            value: 0,
            mask: Some(0xff00),
            negated: true
        }]
    );
}

#[test]
fn translated_rules_handles_old_mark_syntax_and_wrapped_maps_are_read() {
    let text = fixture("iptables-nft-and-native-a-8space.nft");
    let r = nft::parse(&text);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.records(), count_rules(&text));
    assert!(
        r.comments
            .iter()
            .any(|(l, c)| *l == 1 && c.contains("managed by iptables-nft"))
    );

    let filter = r.table("ip", "filter").expect("ip filter");
    assert_eq!(filter.handle, Some(3));
    let input = filter.chain("INPUT").expect("INPUT");
    assert_eq!(input.handle, Some(1));
    assert_eq!(input.rules[0].handle, Some(9));
    assert_eq!(
        input.rules[0].text,
        "counter packets 1200 bytes 340000 jump cali-INPUT"
    );

    let ci = &filter.chain("cali-INPUT").expect("cali-INPUT").rules;
    assert_eq!(ci.len(), 6);
    assert_eq!(
        ci[1].marks,
        [MarkMatch {
            value: 0x10000,
            mask: Some(0x10000),
            negated: false
        }]
    );
    assert_eq!(ci[2].xt, ["xt_conntrack"]);
    assert_eq!(ci[2].verdict, Some(Verdict::Drop));
    assert_eq!(ci[2].handle, Some(16));
    assert_eq!(ci[3].xt, ["xt_set"]);
    assert_eq!(ci[4].mark_sets, ["mark and 0xffe4ffff"]);
    assert!(ci[4].marks.is_empty());
    assert_eq!(ci[5].xt, ["xt_REJECT"]);
    assert_eq!(ci[5].verdict, None);
    assert_eq!(
        filter.chain("cali-wl-to-host").map(|c| c.rules[1].handle),
        Some(Some(21))
    );

    let c6 = r.table("ip6", "calico").expect("ip6 calico");
    let set = c6.set("cali60s:0RSdCvrcIzqrbD8RjNEx09").expect("v6 set");
    assert_eq!(set.handle, Some(2));
    assert_eq!(set.key_type.as_deref(), Some("ipv6_addr"));
    let elems: Vec<(usize, &str)> = set
        .elements
        .iter()
        .map(|e| (e.line, e.value.as_str()))
        .collect();
    assert_eq!(
        elems,
        [
            (26, "fd00:10:244:0:a1b2:c3d4:e5f6:1"),
            (27, "fd00:10:245::/64")
        ]
    );
    assert!(
        c6.set("cali60s:empty")
            .is_some_and(|s| s.elements.is_empty())
    );
    let map = c6.set("filter-cali-to-wl-dispatch").expect("map");
    let entries: Vec<(&str, Option<&str>)> = map
        .elements
        .iter()
        .map(|e| (e.value.as_str(), e.data.as_deref()))
        .collect();
    assert_eq!(
        entries,
        [
            (
                "calia1b2c3d4e5f",
                Some("goto filter-cali-tw-calia1b2c3d4e5f")
            ),
            (
                "calib2c3d4e5f6a",
                Some("goto filter-cali-tw-calib2c3d4e5f6a")
            )
        ]
    );

    let tw = &c6
        .chain("filter-cali-tw-calia1b2c3d4e5f")
        .expect("tw")
        .rules;
    assert_eq!(tw[1].set_refs, ["cali60s:0RSdCvrcIzqrbD8RjNEx09"]);
    assert_eq!(
        tw[1].comment.as_deref(),
        Some("cali:M5sTQa1KWsUgyFPC; Policy default.allow-frontend ingress")
    );
    assert_eq!(tw[1].verdict, None);
    assert_eq!(
        tw[2].marks,
        [MarkMatch {
            value: 0,
            mask: Some(0x10000),
            negated: true
        }]
    );
    assert_eq!(tw[2].verdict, Some(Verdict::Return));
    assert_eq!(
        tw[3].ifaces,
        [IfaceMatch {
            out: true,
            negated: true,
            value: "eth0,eth1".into()
        }]
    );
    assert_eq!(
        tw[3].verdict,
        Some(Verdict::Reject(Some("icmpv6 admin-prohibited".into())))
    );
}

#[test]
fn a_truncated_listing_reports_the_unclosed_block_and_keeps_what_was_read() {
    let text = "table ip calico {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1,\n\t\t\t10.0.0.2 }\n\t}\n\tchain c {\n\t\tcounter packets 1 bytes 2 accept\n\t\tstray {\n";
    let r = nft::parse(text);
    assert_eq!(r.records(), 1);
    assert_eq!(
        r.table("ip", "calico")
            .and_then(|t| t.set("s"))
            .map(|s| s.elements.len()),
        Some(2)
    );
    assert!(r.errors.iter().any(|e| e.line == 9), "{:?}", r.errors);
}

fn shared_corpus(kind: &str) -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus")
        .join(kind);
    if !dir.exists() {
        eprintln!("skipping: {} does not exist", dir.display());
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn every_corpus_nft_file_parses_and_counts_every_rule() {
    let Some(files) = shared_corpus("nft") else {
        return;
    };
    assert!(!files.is_empty());
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let r = nft::parse(&text);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert_eq!(r.records(), count_rules(&text), "{name}");
        if name.starts_with("calico-fv") {
            assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
        }
    }
}

mod never_panics {
    use calisnap::parse::nft;
    use proptest::prelude::*;

    const FRAGMENTS: &[&str] = &[
        "table",
        "ip",
        "ip6",
        "t",
        "{",
        "}",
        "chain",
        "c",
        "set",
        "map",
        "type",
        "filter",
        "hook",
        "input",
        "priority",
        "policy",
        "accept",
        ";",
        "elements",
        "=",
        ",",
        ":",
        "\"",
        "@s",
        "meta",
        "mark",
        "&",
        "==",
        "!=",
        "0x1",
        "set",
        "ct",
        "jump",
        "goto",
        "vmap",
        "dnat",
        "to",
        "iifname",
        "counter",
        "packets",
        "bytes",
        "1",
        "comment",
        "# handle 3",
        "#",
        "xt_x",
        "add",
        "rule",
        "element",
        "reject",
        "with",
        "é",
        "\n",
        "\r\n",
    ];

    proptest! {
        #[test]
        fn arbitrary_fragments_never_panic(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80)) {
            let _ = nft::parse(&parts.join(" "));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = nft::parse(&text);
        }
    }
}
