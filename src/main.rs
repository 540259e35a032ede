//! The `calisnap` command line: parse arguments, call the library, print errors, and exit
//! 0 (analysed, nothing at or above the fail level), 1 (findings at or above it) or 2 (the
//! tool could not do its job).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use calisnap::checks::Severity;

#[derive(Parser)]
#[command(
    name = "calisnap",
    version,
    about = "Offline analyzer for Calico support bundles",
    long_about = "Reads a Calico support bundle (our collector's tarball, a `calicoctl node diags` or \
                  `cluster diags` archive, a folder or a single dump), recomputes what Felix should \
                  have programmed, and reports where it differs, with the evidence."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse a bundle and write a report.
    Analyze(AnalyzeArgs),
    /// List the checks (`--markdown`: docs/checks.md).
    Checks {
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// The bundle: a .tar.gz/.tgz, a .tar, a folder, or a single file.
    bundle: PathBuf,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    format: Format,
    /// Where to write the report; `-` for stdout. Default: `<bundle>.report.<ext>` beside the bundle.
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// A folder with report.html.j2 and/or report.md.j2 replacing the built-in templates.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Html,
    Md,
    Json,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Md => "md",
            Format::Json => "json",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze(args),
        Command::Checks { markdown } => list_checks(markdown),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("calisnap: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let analysis = calisnap::analyze(&args.bundle)?;
    let report = analysis.report();
    let templates = args.templates.as_deref();
    let rendered = match args.format {
        Format::Json => calisnap::report::render_json(&report),
        Format::Md => calisnap::report::render_markdown(&report, templates)?,
        Format::Html => calisnap::report::render_html(&report, templates)?,
    };
    let target = match args.output.as_deref() {
        Some("-") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(default_report_path(&args.bundle, args.format.extension())),
    };
    match &target {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(rendered.as_bytes())?;
            out.flush()?;
        }
        Some(path) => {
            std::fs::write(path, rendered.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let color = calisnap::report::use_color();
            print!(
                "{}",
                calisnap::report::terminal_summary(&report, Some(path), color)
            );
        }
    }
    let threshold = match args.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    };
    let failing = threshold.is_some_and(|t| analysis.findings.iter().any(|f| f.severity >= t));
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `<bundle-name>.report.<ext>` next to the bundle (for a folder, beside the folder).
fn default_report_path(bundle: &Path, ext: &str) -> PathBuf {
    let name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".to_string());
    let stem = [".tar.gz", ".tgz", ".tar", ".gz"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name)
        .to_string();
    let dir = bundle.parent().unwrap_or(Path::new("."));
    dir.join(format!("{stem}.report.{ext}"))
}

fn list_checks(markdown: bool) -> anyhow::Result<ExitCode> {
    if markdown {
        print!("{}", calisnap::checks::render_docs());
    } else {
        for c in calisnap::checks::CHECKS {
            println!(
                "{}  {:<8} {:<22} {}",
                c.code,
                c.severity.as_str(),
                c.step.title(),
                c.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
