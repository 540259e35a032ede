//! Which network sets hold an address: a longest-prefix-style index over every (Global)
//! NetworkSet's nets, so a flow end is resolved in a few hash lookups (one per prefix length
//! in use) instead of a scan of every set.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Network-set indexes by the nets they hold.
#[derive(Debug, Default)]
pub struct NetIndex {
    /// Per prefix length in use (ascending): masked network address → owners.
    v4: Vec<(u8, foldhash::HashMap<u32, Vec<usize>>)>,
    v6: Vec<(u8, foldhash::HashMap<u128, Vec<usize>>)>,
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl NetIndex {
    /// Index `nets_of(i)` for every owner `i` in `0..owners`.
    pub fn new<'a, I>(owners: usize, nets_of: impl Fn(usize) -> I) -> NetIndex
    where
        I: IntoIterator<Item = &'a IpNet>,
    {
        let mut v4: HashMap<u8, foldhash::HashMap<u32, Vec<usize>>> = HashMap::new();
        let mut v6: HashMap<u8, foldhash::HashMap<u128, Vec<usize>>> = HashMap::new();
        for i in 0..owners {
            for net in nets_of(i) {
                let len = net.prefix_len();
                let owners = match net {
                    IpNet::V4(n) => v4
                        .entry(len)
                        .or_default()
                        .entry(mask4(u32::from(n.addr()), len))
                        .or_default(),
                    IpNet::V6(n) => v6
                        .entry(len)
                        .or_default()
                        .entry(mask6(u128::from(n.addr()), len))
                        .or_default(),
                };
                if owners.last() != Some(&i) {
                    owners.push(i);
                }
            }
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        let mut v6: Vec<_> = v6.into_iter().collect();
        v4.sort_by_key(|(len, _)| *len);
        v6.sort_by_key(|(len, _)| *len);
        NetIndex { v4, v6 }
    }

    /// Owners with a net containing `ip`, ascending, each once.
    pub fn containing(&self, ip: IpAddr) -> Vec<usize> {
        let mut out = Vec::new();
        self.containing_into(ip, &mut out);
        out
    }

    /// [`Self::containing`] into a buffer the caller reuses (cleared first): no allocation
    /// per lookup once the buffer has grown.
    pub fn containing_into(&self, ip: IpAddr, out: &mut Vec<usize>) {
        out.clear();
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                for (len, map) in &self.v4 {
                    out.extend(map.get(&mask4(a, *len)).into_iter().flatten());
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (len, map) in &self.v6 {
                    out.extend(map.get(&mask6(a, *len)).into_iter().flatten());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("net")).collect()
    }

    #[test]
    fn finds_every_set_whose_nets_contain_the_address_like_a_scan_would() {
        let sets = [
            nets(&["10.0.0.0/8", "192.168.1.0/24"]),
            nets(&["10.1.2.3/32"]),
            nets(&["0.0.0.0/0"]),
            nets(&["fd00::/8", "10.1.0.0/16"]),
            nets(&["10.1.2.0/24", "10.1.2.0/25"]),
            nets(&["10.1.2.200/30"]),
        ];
        let index = NetIndex::new(sets.len(), |i| sets[i].iter());
        for ip in [
            "10.1.2.3",
            "10.1.2.201",
            "192.168.1.9",
            "8.8.8.8",
            "fd00::1",
            "fe80::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            let scan: Vec<usize> = (0..sets.len())
                .filter(|&i| sets[i].iter().any(|n| n.contains(&ip)))
                .collect();
            assert_eq!(index.containing(ip), scan, "{ip}");
        }
        assert_eq!(
            index.containing("10.1.2.3".parse().expect("ip")),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn host_bits_of_a_net_do_not_hide_it() {
        // `10.1.2.3/24` as written in a NetworkSet means 10.1.2.0/24.
        let sets = [nets(&["10.1.2.3/24"])];
        let index = NetIndex::new(1, |i| sets[i].iter());
        assert_eq!(index.containing("10.1.2.77".parse().expect("ip")), vec![0]);
    }
}
