//! The HTML report in a real headless Chromium: the page is not blank, no script from the
//! data runs, no request leaves the page, and the filter given in the URL fragment shows
//! only the matching findings. Skips (with a message) when /usr/bin/chromium is missing.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use calisnap::report::example::{hostile_report, sample_report};
use calisnap::report::render_html;
use regex::Regex;

const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: the machine may have two cores.
static BROWSER: Mutex<()> = Mutex::new(());

fn have_chromium() -> bool {
    if Path::new(CHROMIUM).exists() {
        true
    } else {
        eprintln!("skipping: {CHROMIUM} not found (install the chromium package to run this test)");
        false
    }
}

/// Runs headless Chromium on `url` with `extra` flags in a fresh profile; returns stdout.
fn chromium(extra: &[String], url: &str) -> String {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 120 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

fn dump_dom(url: &str) -> String {
    let dom = chromium(
        &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
        url,
    );
    assert!(dom.contains("</html>"), "no DOM dumped for {url}: {dom}");
    dom
}

fn screenshot(url: &str, out: &Path) -> Vec<u8> {
    chromium(
        &[
            "--window-size=1280,1600".into(),
            "--hide-scrollbars".into(),
            format!("--screenshot={}", out.display()),
        ],
        url,
    );
    let png = std::fs::read(out).expect("screenshot written");
    if let Some(dir) = std::env::var_os("CALISNAP_SCREENSHOT_DIR") {
        let name = out.file_name().unwrap();
        let _ = std::fs::write(PathBuf::from(dir).join(name), &png);
    }
    png
}

fn write_page(dir: &Path, name: &str, html: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, html).unwrap();
    format!("file://{}", path.display())
}

/// Each `<article class="finding">` of the DOM: (id, severity, node, visible).
fn findings(dom: &str) -> Vec<(String, String, String, bool)> {
    let article = Regex::new(r"<article ([^>]*)>").unwrap();
    let attr = |tag: &str, name: &str| -> Option<String> {
        Regex::new(&format!(r#"(?:^|\s){name}="([^"]*)""#))
            .unwrap()
            .captures(tag)
            .map(|c| c[1].to_string())
    };
    article
        .captures_iter(dom)
        .map(|c| {
            let tag = &c[1];
            (
                attr(tag, "id").unwrap_or_default(),
                attr(tag, "data-severity").unwrap_or_default(),
                attr(tag, "data-node").unwrap_or_default(),
                !Regex::new(r#"(?:^|\s)hidden(?:="[^"]*")?(?:\s|$)"#)
                    .unwrap()
                    .is_match(tag),
            )
        })
        .collect()
}

/// A local HTTP listener that records every request made to it and answers 404, so a page
/// that does request something is seen and does not hang the browser.
struct Detector {
    base: String,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Detector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        let request = String::from_utf8_lossy(&buf[..n]);
                        let first = request.lines().next().unwrap_or("").to_string();
                        seen.push(format!("{peer}: {first}"));
                        let _ = conn.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if flag.load(Ordering::SeqCst) {
                            return seen;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => return seen,
                }
            }
        });
        Detector { base, stop, thread }
    }

    /// The requests that arrived, after letting late ones land.
    fn finish(self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(500));
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

// ---- PNG, just enough to look at the pixels ----

struct Image {
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
}

fn decode_png(png: &[u8]) -> Image {
    assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "not a PNG");
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    0 => 1,
                    2 => 3,
                    4 => 2,
                    6 => 4,
                    t => panic!("colour type {t}"),
                };
                assert_eq!(data[12], 0, "interlaced");
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "PNG data size");
    let mut pixels = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                pixels[y * stride + x - channels]
            } else {
                0
            };
            let b = if y > 0 {
                pixels[(y - 1) * stride + x]
            } else {
                0
            };
            let c = if x >= channels && y > 0 {
                pixels[(y - 1) * stride + x - channels]
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((a as u16 + b as u16) / 2) as u8,
                4 => {
                    let p = a as i16 + b as i16 - c as i16;
                    let (pa, pb, pc) = (
                        (p - a as i16).abs(),
                        (p - b as i16).abs(),
                        (p - c as i16).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            pixels[y * stride + x] = line[x].wrapping_add(predictor);
        }
    }
    Image {
        width,
        height,
        channels,
        pixels,
    }
}

/// The page shows something: many colours, and a fair share of pixels off the background.
fn assert_not_blank(png: &[u8], what: &str) {
    let img = decode_png(png);
    assert!(
        img.width >= 800 && img.height >= 600,
        "{what}: {}x{}",
        img.width,
        img.height
    );
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for px in img.pixels.chunks(img.channels) {
        *counts.entry(px).or_default() += 1;
    }
    let total = img.width * img.height;
    let background = counts.values().copied().max().unwrap_or(0);
    let colours: HashSet<&&[u8]> = counts.keys().collect();
    assert!(colours.len() > 16, "{what}: only {} colours", colours.len());
    let drawn = total - background;
    assert!(
        drawn * 20 > total,
        "{what}: only {drawn} of {total} pixels differ from the background"
    );
}

#[test]
fn the_sample_report_renders_a_page_that_is_not_blank() {
    if !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = write_page(
        dir.path(),
        "sample.html",
        &render_html(&sample_report(), None).unwrap(),
    );
    let png = screenshot(&url, &dir.path().join("sample.png"));
    assert_not_blank(&png, "sample report");

    let dom = dump_dom(&url);
    assert!(dom.contains(
        "<title>calisnap report: calico-bundle-prod-eu1-20250314T101502Z.tar.gz</title>"
    ));
    // The script ran: it marks the page and counts the findings.
    assert!(
        dom.contains("class=\"js\"") || dom.contains("class=\" js\""),
        "script did not run"
    );
    assert!(dom.contains(">9 findings<"));
}

#[test]
fn hostile_text_runs_no_script_and_no_request_leaves_the_page() {
    if !have_chromium() {
        return;
    }
    let detector = Detector::start();
    let report = hostile_report(&detector.base);
    let dir = tempfile::tempdir().unwrap();
    let html = render_html(&report, None).unwrap();
    let host = detector.base.trim_start_matches("http://");
    assert!(
        html.contains(host),
        "the payloads must point at the detector"
    );
    let url = write_page(dir.path(), "hostile.html", &html);

    let dom = dump_dom(&url);
    let title = Regex::new(r"<title>([^<]*)</title>")
        .unwrap()
        .captures(&dom)
        .unwrap()[1]
        .to_string();
    assert!(
        title.starts_with("calisnap report: "),
        "title changed to {title:?}"
    );
    assert!(!title.contains("PWNED"));
    assert!(
        !dom.contains("<div id=\"pwned\""),
        "injected element exists"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the report's own script"
    );
    for tag in [
        "<img",
        "<iframe",
        "<svg",
        "<object",
        "<embed",
        "<video",
        "<audio",
        "<link",
        "<base",
        "<form",
        "<input type=\"image\"",
        "<meta http-equiv=\"refresh\"",
    ] {
        assert!(!dom.contains(tag), "{tag} made it into the DOM");
    }
    assert_eq!(findings(&dom).len(), report.findings.len());

    let png = screenshot(&url, &dir.path().join("hostile.png"));
    assert_not_blank(&png, "hostile report");
    // A hostile node name in the fragment filter is only ever text.
    let dom = dump_dom(&format!(
        "{url}#filter=node:%3Cimg%20src%3D{}%2Fhash%3E",
        detector.base
    ));
    assert!(!dom.contains("<img"));

    let requests = detector.finish();
    assert!(requests.is_empty(), "the page made requests: {requests:?}");
}

#[test]
fn the_request_detector_sees_a_page_that_does_request() {
    // Without this, "no request arrived" could mean the detector is blind.
    if !have_chromium() {
        return;
    }
    let detector = Detector::start();
    let dir = tempfile::tempdir().unwrap();
    let url = write_page(
        dir.path(),
        "control.html",
        &format!(
            "<!DOCTYPE html><title>control</title><img src=\"{}/control.png\">",
            detector.base
        ),
    );
    let _ = dump_dom(&url);
    let requests = detector.finish();
    assert!(
        requests.iter().any(|r| r.contains("GET /control.png")),
        "{requests:?}"
    );
}

#[test]
fn a_filter_in_the_url_fragment_shows_only_the_matching_findings() {
    if !have_chromium() {
        return;
    }
    let report = sample_report();
    let dir = tempfile::tempdir().unwrap();
    let url = write_page(
        dir.path(),
        "sample.html",
        &render_html(&report, None).unwrap(),
    );

    let dom = dump_dom(&format!("{url}#filter=severity:error"));
    let all = findings(&dom);
    assert_eq!(all.len(), 9);
    let visible: Vec<_> = all.iter().filter(|f| f.3).collect();
    assert_eq!(visible.len(), 3, "{visible:?}");
    assert!(visible.iter().all(|f| f.1 == "error"));
    assert!(dom.contains("3 of 9 findings shown"));

    let dom = dump_dom(&format!(
        "{url}#filter=severity:error,warning;node:worker-2"
    ));
    let visible: Vec<String> = findings(&dom)
        .into_iter()
        .filter(|f| f.3)
        .map(|f| {
            assert_eq!(f.2, "worker-2");
            assert_ne!(f.1, "info");
            f.0.split('-').next().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(visible, vec!["CAL001", "CAL030", "CAL040", "CAL041"]);

    let dom = dump_dom(&format!("{url}#filter=q:stale%20member"));
    let visible: Vec<String> = findings(&dom)
        .into_iter()
        .filter(|f| f.3)
        .map(|f| f.0)
        .collect();
    assert_eq!(visible.len(), 1, "{visible:?}");
    assert!(visible[0].starts_with("CAL041-"));

    // Without a filter everything shows.
    let dom = dump_dom(&url);
    assert!(findings(&dom).iter().all(|f| f.3));
}

#[test]
fn a_link_to_a_folded_finding_unfolds_it() {
    if !have_chromium() {
        return;
    }
    let report = sample_report();
    let info = calisnap::report::view::anchors(&report.findings)[1].clone();
    assert!(info.starts_with("CAL002-"));
    let dir = tempfile::tempdir().unwrap();
    let url = write_page(
        dir.path(),
        "sample.html",
        &render_html(&report, None).unwrap(),
    );

    let folded = Regex::new(r#"<article class="finding sev-info collapsed" id="CAL002-"#).unwrap();
    assert!(
        folded.is_match(&dump_dom(&url)),
        "info findings start folded"
    );
    let dom = dump_dom(&format!("{url}#{info}"));
    assert!(dom.contains(&format!(
        "<article class=\"finding sev-info\" id=\"{info}\""
    )));
}

/// Copy a fixture bundle folder, replacing `@@BASE@@` with `base` in every file.
fn copy_bundle(from: &Path, to: &Path, base: &str) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_bundle(&e.path(), &dest, base);
        } else {
            let text = std::fs::read_to_string(e.path()).unwrap();
            std::fs::write(dest, text.replace("@@BASE@@", base)).unwrap();
        }
    }
}

fn bundle_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bundles")
        .join(name)
}

#[test]
fn the_example_bundle_report_renders_and_its_filter_works() {
    if !have_chromium() {
        return;
    }
    let analysis = calisnap::analyze(&bundle_dir("calico-bundle-demo-20261125T140215Z")).unwrap();
    let report = analysis.report();
    let dir = tempfile::tempdir().unwrap();
    let url = write_page(
        dir.path(),
        "demo.html",
        &render_html(&report, None).unwrap(),
    );
    let png = screenshot(&url, &dir.path().join("demo.png"));
    assert_not_blank(&png, "example bundle report");
    let all = findings(&dump_dom(&url));
    assert_eq!(all.len(), report.findings.len());
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == calisnap::checks::Severity::Error)
        .count();
    assert!(errors > 0 && errors < report.findings.len());
    let filtered = findings(&dump_dom(&format!("{url}#filter=severity:error")));
    let visible: Vec<_> = filtered.iter().filter(|f| f.3).collect();
    assert_eq!(visible.len(), errors, "{filtered:?}");
    assert!(visible.iter().all(|f| f.1 == "error"));
}

#[test]
fn a_hostile_bundle_runs_no_script_and_makes_no_request() {
    if !have_chromium() {
        return;
    }
    let detector = Detector::start();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("hostile");
    copy_bundle(&bundle_dir("hostile"), &bundle, &detector.base);
    let analysis = calisnap::analyze(&bundle).unwrap();
    let report = analysis.report();
    let html = render_html(&report, None).unwrap();
    let host = detector.base.trim_start_matches("http://");
    assert!(html.contains(host), "the payloads reach the report");
    let url = write_page(tmp.path(), "hostile-bundle.html", &html);
    let dom = dump_dom(&url);
    let title = Regex::new(r"<title>([^<]*)</title>")
        .unwrap()
        .captures(&dom)
        .unwrap()[1]
        .to_string();
    assert!(
        title.starts_with("calisnap report: "),
        "title changed to {title:?}"
    );
    assert!(!title.contains("PWNED"));
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the report's own script"
    );
    for tag in ["<img", "<iframe", "<svg"] {
        assert!(!dom.contains(tag), "{tag} made it into the DOM");
    }
    assert!(
        dom.contains("{{7*7}}"),
        "template syntax in data comes out literally"
    );
    let png = screenshot(&url, &tmp.path().join("hostile-bundle.png"));
    assert_not_blank(&png, "hostile bundle report");
    let md = calisnap::report::render_markdown(&report, None).unwrap();
    assert!(md.contains("{{7*7}}"));
    let requests = detector.finish();
    assert!(requests.is_empty(), "the page made requests: {requests:?}");
}
