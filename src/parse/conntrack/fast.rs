//! The reader for flow lines as `conntrack -L` prints them (`tcp      6 86399 ESTABLISHED
//! src=… dst=… sport=… dport=… [UNREPLIED] src=… … [ASSURED] mark=0 use=1`, with or without
//! the `-o extended` family prefix, `zone=`, counters, labels and so on). It reads the line in
//! one pass: the usual keys are matched by their first bytes and their values (dotted quads,
//! decimals) read in place, up to the space that must follow them; every other token goes
//! through the same [`EntryBuilder`] as the general reader, so a token means the same to both.
//!
//! It is not a second parser of the format: on anything it does not expect (events, stamps,
//! tabs or other blanks than spaces, unknown protocol names, a value it cannot read, a line
//! the general reader would report) it returns `None` and the general reader takes the line.

use std::net::IpAddr;

use std::net::Ipv4Addr;

use super::{CLASS, Entry, EntryBuilder, Family, SPACE, proto_number};

/// The first four bytes of the keys read in place, as one little-endian word.
const fn key(k: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*k)
}
const SRC: u32 = key(b"src=");
const DST: u32 = key(b"dst=");
const SPOR: u32 = key(b"spor");
const DPOR: u32 = key(b"dpor");
const USE: u32 = key(b"use=");
const MARK: u32 = key(b"mark");
const ZONE: u32 = key(b"zone");
const TYPE: u32 = key(b"type");
const CODE: u32 = key(b"code");
const ASS: u32 = key(b"[ASS");
const UNR: u32 = key(b"[UNR");

/// The entry of one flow line, or `None` to leave the line to the general reader.
pub(super) fn entry(no: usize, line: &str) -> Option<Entry> {
    let b = line.as_bytes();
    // `trim` leaves such a line as it is, and neither a tool message, an `-S`/`-C` line nor
    // XML starts with a protocol name.
    if !b.first()?.is_ascii_lowercase() || !b.last()?.is_ascii_graphic() {
        return None;
    }
    let mut i = 0;
    let family = match b.get(..5) {
        Some(b"ipv4 ") => Some(Family::Ipv4),
        Some(b"ipv6 ") => Some(Family::Ipv6),
        _ => None,
    };
    if family.is_some() {
        // The family number (2 / 10).
        let (_, end) = digits(b, spaces(b, 5))?;
        if b.get(end) != Some(&b' ') {
            return None;
        }
        i = spaces(b, end);
    }
    let start = i;
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        i += 1;
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let proto = proto_number(line.get(start..i)?)?;
    let (n, end) = digits(b, spaces(b, i))?;
    if n != u64::from(proto) || !ends(b, end) {
        return None;
    }
    i = end;
    let mut e = EntryBuilder::default();
    loop {
        i = spaces(b, i);
        if i >= b.len() {
            break;
        }
        i = token(&mut e, line, i)?;
    }
    e.finish(no, family, proto, None).ok()
}

/// Read the token at `line[i]` (not a space) into `e`; the index after it, or `None` to give
/// the line up.
#[inline]
fn token(e: &mut EntryBuilder, line: &str, i: usize) -> Option<usize> {
    let b = line.as_bytes();
    let rest = b.get(i..)?;
    if e.first
        && let Some((n, end)) = number::<u32>(b, i)
    {
        e.first = false;
        e.timeout = n;
        return Some(end);
    }
    let d = e.dir;
    let key = rest
        .get(..4)
        .and_then(|k| <[u8; 4]>::try_from(k).ok())
        .map_or(0, u32::from_le_bytes);
    let at = |k: usize| rest.get(k).copied();
    let done = match key {
        SRC | DST => ipv4_at(b, i + 4)
            .filter(|&(_, end)| ends(b, end))
            .map(|(ip, end)| {
                let src = key == SRC;
                e.turn(src).map(|()| {
                    e.set_ip(src, IpAddr::V4(ip));
                    end
                })
            }),
        SPOR if at(4) == Some(b't') && at(5) == Some(b'=') => number(b, i + 6).map(|(v, end)| {
            e.tuples[d].sport = Some(v);
            Ok(end)
        }),
        DPOR if at(4) == Some(b't') && at(5) == Some(b'=') => number(b, i + 6).map(|(v, end)| {
            e.tuples[d].dport = Some(v);
            Ok(end)
        }),
        USE => number(b, i + 4).map(|(v, end)| {
            e.use_count = v;
            Ok(end)
        }),
        MARK if at(4) == Some(b'=') => number(b, i + 5).map(|(v, end)| {
            e.mark = v;
            Ok(end)
        }),
        ZONE if at(4) == Some(b'=') => number(b, i + 5).map(|(v, end)| {
            e.zone = Some(v);
            Ok(end)
        }),
        TYPE if at(4) == Some(b'=') => number(b, i + 5).map(|(v, end)| {
            e.tuples[d].kind = Some(v);
            Ok(end)
        }),
        CODE if at(4) == Some(b'=') => number(b, i + 5).map(|(v, end)| {
            e.tuples[d].code = Some(v);
            Ok(end)
        }),
        ASS if rest.get(..9) == Some(b"[ASSURED]") && ends(b, i + 9) => {
            e.assured = true;
            Some(Ok(i + 9))
        }
        UNR if rest.get(..11) == Some(b"[UNREPLIED]") && ends(b, i + 11) => {
            e.unreplied = true;
            Some(Ok(i + 11))
        }
        // The TCP state, before the first tuple: `word` would take it so.
        _ if rest.first().is_some_and(u8::is_ascii_uppercase)
            && e.state.is_none()
            && e.tuples[0].src.is_none() =>
        {
            let n = rest
                .iter()
                .position(|&c| !(c.is_ascii_uppercase() || c == b'_'))
                .unwrap_or(rest.len());
            match line.get(i..i + n) {
                Some(w) if ends(b, i + n) => {
                    e.state = super::TcpState::from_word(w);
                    Some(Ok(i + n))
                }
                _ => None,
            }
        }
        _ if rest.get(..3) == Some(b"id=") && e.takes_id() => number(b, i + 3).map(|(v, end)| {
            e.tuples[d].id = Some(v);
            Ok(end)
        }),
        _ => None,
    };
    match done {
        Some(Ok(end)) => {
            e.first = false;
            Some(end)
        }
        // What the general reader reports (a third tuple).
        Some(Err(_)) => None,
        None => other(e, line, i),
    }
}

/// Any other token, read as the general reader reads it.
#[cold]
fn other(e: &mut EntryBuilder, line: &str, i: usize) -> Option<usize> {
    let b = line.as_bytes();
    let mut j = i;
    let mut eq = None;
    while let Some(&c) = b.get(j) {
        if c == b' ' {
            break;
        }
        // A tab, CR, LF or FF: the general tokenizer cuts there too, but leave such lines to it.
        if CLASS[c as usize] == SPACE {
            return None;
        }
        if c == b'=' && eq.is_none() {
            eq = Some(j - i);
        }
        j += 1;
    }
    e.token(line.get(i..j)?, eq).ok()?;
    Some(j)
}

/// The index of the first byte at or after `i` that is not a space.
#[inline(always)]
fn spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// A token may end at `b[i]`: a space or the end of the line.
#[inline(always)]
fn ends(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|&c| c == b' ')
}

/// 1 to 19 digits at `b[i]` (not followed by another digit) and the index after them.
#[inline(always)]
fn digits(b: &[u8], i: usize) -> Option<(u64, usize)> {
    // Up to seven digits with eight bytes to look at: all at once.
    if let Some(w) = b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
        let x = u64::from_le_bytes(w).wrapping_sub(0x3030_3030_3030_3030);
        // The high bit of each byte that is not a digit (exact up to the first of them,
        // which is all that is used).
        let not_digit = (x | x.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
        let len = (not_digit.trailing_zeros() / 8) as usize;
        if len == 0 {
            return None;
        }
        if len < 8 {
            // The digits to the top bytes (zeros below them), then pairs, quads, octets.
            let v = x << (8 * (8 - len));
            let v = ((v & 0x0f0f_0f0f_0f0f_0f0f).wrapping_mul(2561)) >> 8;
            let v = ((v & 0x00ff_00ff_00ff_00ff).wrapping_mul(6_553_601)) >> 16;
            let v = ((v & 0x0000_ffff_0000_ffff).wrapping_mul(42_949_672_960_001)) >> 32;
            return Some((v, i + len));
        }
    }
    let mut n = 0u64;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        let v = c.wrapping_sub(b'0');
        if v > 9 {
            break;
        }
        if j - i == 19 {
            return None;
        }
        n = n * 10 + u64::from(v);
        j += 1;
    }
    (j > i).then_some((n, j))
}

/// The value of the ASCII digit `b[i]`.
#[inline(always)]
fn digit(b: &[u8], i: usize) -> Option<u8> {
    b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&v| v <= 9)
}

/// A dotted quad at `b[i]` as `dotted_quad` reads one (each part 0–255 in one to three
/// digits, no leading zero), and the index after it.
#[inline(always)]
fn ipv4_at(b: &[u8], mut i: usize) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let d0 = digit(b, i)?;
        let mut n = u32::from(d0);
        i += 1;
        if let Some(d1) = digit(b, i) {
            if d0 == 0 {
                return None;
            }
            n = n * 10 + u32::from(d1);
            i += 1;
            if let Some(d2) = digit(b, i) {
                n = n * 10 + u32::from(d2);
                i += 1;
                if n > 255 || digit(b, i).is_some() {
                    return None;
                }
            }
        }
        *o = n as u8;
    }
    Some((Ipv4Addr::from(octets), i))
}

/// A decimal value that ends its token, as `dec` reads plain digits.
#[inline(always)]
fn number<T: TryFrom<u64>>(b: &[u8], i: usize) -> Option<(T, usize)> {
    let (n, end) = digits(b, i)?;
    if !ends(b, end) {
        return None;
    }
    Some((T::try_from(n).ok()?, end))
}
