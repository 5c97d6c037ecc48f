//! The check's table: one row per figure, each check isolated so that an error or a panic (an
//! autotune bug, an out-of-memory) becomes a FAIL row and the next check still runs. The table
//! is rewritten to disk after every check, so a run cut short by a time limit keeps its rows.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// How a row's figure is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Within its tolerance.
    Pass,
    /// Outside its tolerance, or the check failed.
    Fail,
    /// A measurement with no pass mark.
    Measured,
}

/// One figure of the table.
#[derive(Debug)]
pub struct Row {
    case: String,
    value: String,
    unit: String,
    status: Status,
}

impl Row {
    /// A measurement.
    pub fn measured(case: impl Into<String>, value: String, unit: impl Into<String>) -> Self {
        Self {
            case: case.into(),
            value,
            unit: unit.into(),
            status: Status::Measured,
        }
    }

    /// A figure judged against its limit.
    pub fn judged(
        case: impl Into<String>,
        value: String,
        unit: impl Into<String>,
        pass: bool,
    ) -> Self {
        Self {
            case: case.into(),
            value,
            unit: unit.into(),
            status: if pass { Status::Pass } else { Status::Fail },
        }
    }
}

/// The rows so far, with the header that says where they were measured.
#[derive(Debug)]
pub struct Report {
    header: String,
    /// `(section, row)` in the order measured.
    rows: Vec<(&'static str, Row)>,
    path: PathBuf,
}

impl Report {
    /// An empty report written to `out/table.md`, headed by the date, `device`, the commit,
    /// the backend and the shapes.
    pub fn new(out: &Path, device: &str, backend: &str, shapes: &str) -> Result<Self> {
        std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
        let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        let commit = command_line("git", &["rev-parse", "--short", "HEAD"]);
        let header = format!(
            "GPU check, {}; device {device}; commit {}; backend {backend}; shapes {shapes}",
            date.as_deref().unwrap_or("date unknown"),
            commit.as_deref().unwrap_or("unknown"),
        );
        Ok(Self {
            header,
            rows: Vec::new(),
            path: out.join("table.md"),
        })
    }

    /// Runs `check`; its error or panic becomes a FAIL row named `case`, and gives `None`.
    pub fn attempt<T>(
        &mut self,
        section: &'static str,
        case: &str,
        check: impl FnOnce() -> Result<T>,
    ) -> Option<T> {
        eprintln!("gpu_check: {section}: {case}");
        let message = match catch_unwind(AssertUnwindSafe(check)) {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => format!("error: {error:#}"),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                format!("panic: {text}")
            }
        };
        // One table cell: the first lines of the message, without the pipes of Markdown.
        let cell = message.lines().take(3).collect::<Vec<_>>().join(" ");
        self.push(
            section,
            vec![Row {
                case: case.into(),
                value: cell.replace('|', "/"),
                unit: String::new(),
                status: Status::Fail,
            }],
        );
        None
    }

    /// Runs `check` through [`Report::attempt`] and adds the rows it returns.
    pub fn check(
        &mut self,
        section: &'static str,
        case: &str,
        check: impl FnOnce() -> Result<Vec<Row>>,
    ) {
        if let Some(rows) = self.attempt(section, case, check) {
            self.push(section, rows);
        }
    }

    /// Rows with status FAIL.
    pub fn failures(&self) -> usize {
        let failed = |(_, row): &&(_, Row)| row.status == Status::Fail;
        self.rows.iter().filter(failed).count()
    }

    /// The header line and the Markdown table.
    pub fn markdown(&self) -> String {
        let mut text = format!("{}\n\n", self.header);
        text.push_str("| section | case | value | unit | status |\n|---|---|---:|---|---|\n");
        for (section, row) in &self.rows {
            let status = match row.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Measured => "measured",
            };
            let Row {
                case, value, unit, ..
            } = row;
            let _ = writeln!(text, "| {section} | {case} | {value} | {unit} | {status} |");
        }
        text
    }

    /// Where the table is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn push(&mut self, section: &'static str, rows: Vec<Row>) {
        self.rows.extend(rows.into_iter().map(|row| (section, row)));
        if let Err(error) = std::fs::write(&self.path, self.markdown()) {
            eprintln!("gpu_check: cannot write {}: {error}", self.path.display());
        }
    }
}

/// The first line `program args` prints, if it runs and succeeds.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?.trim();
    (output.status.success() && !line.is_empty()).then(|| line.to_string())
}
