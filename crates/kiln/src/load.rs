//! Reading job spec files, and `kiln validate`.

use std::io::Read;
use std::path::Path;

use kiln_core::spec::{self, MAX_SPEC_BYTES, Parsed, SpecError, SpecErrors, Templates};
use serde_json::json;

use crate::output::print_data;
use crate::{Format, exit};

/// Reads a spec file (or standard input for `-`), refusing anything larger than the limit
/// without reading it all.
pub fn read_spec_bytes(path: &Path) -> Result<Vec<u8>, String> {
    read_input(path, "job spec")
}

/// Reads an input file of kind `what` (`job spec`, `task template`, …), or standard input for
/// `-`, refusing anything larger than a job spec may be without reading it all.
pub fn read_input(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let limit = MAX_SPEC_BYTES as u64 + 1;
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "{} is a directory, not a {what} file",
                path.display()
            ));
        }
        file.take(limit).read_to_end(&mut buf)
    };
    read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() > MAX_SPEC_BYTES {
        return Err(format!(
            "{} is larger than the {} MiB a {what} may have",
            path.display(),
            MAX_SPEC_BYTES >> 20
        ));
    }
    Ok(buf)
}

/// Reads and validates a spec file. On failure the errors are returned ready to print.
pub fn load_spec(path: &Path) -> Result<Parsed, SpecErrors> {
    let bytes = read_spec_bytes(path).map_err(read_error)?;
    // `kiln run` has no template store: every template name is unknown here.
    spec::parse_job(&bytes, &Templates::new())
}

/// A read failure as the one error of a spec.
pub fn read_error(message: String) -> SpecErrors {
    SpecErrors(vec![SpecError {
        path: String::new(),
        message,
        hint: None,
    }])
}

/// Prints spec errors to stderr, one per line, with a count.
pub fn print_errors(file: &Path, errors: &SpecErrors) {
    let n = errors.0.len();
    eprintln!(
        "error: {} is not a valid job spec ({n} error{}):",
        file.display(),
        if n == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        eprintln!("  {e}");
    }
}

pub fn error_json(errors: &[SpecError]) -> serde_json::Value {
    errors
        .iter()
        .map(|e| json!({"field": e.path, "message": e.message, "hint": e.hint}))
        .collect()
}

/// `kiln validate FILE`.
pub fn validate(file: &Path, format: Format) -> u8 {
    match load_spec(file) {
        Ok(parsed) => {
            let instances: u64 = parsed
                .spec
                .tasks
                .iter()
                .map(|t| u64::from(t.instances))
                .sum();
            if format == Format::Table {
                for w in &parsed.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: valid job `{}` ({} task{}, {instances} instance{})",
                    file.display(),
                    parsed.spec.name,
                    parsed.spec.tasks.len(),
                    if parsed.spec.tasks.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    if instances == 1 { "" } else { "s" },
                );
            } else {
                let warnings: Vec<_> = parsed.warnings.iter().map(ToString::to_string).collect();
                print_data(
                    format,
                    &json!({
                        "valid": true,
                        "name": parsed.spec.name,
                        "tasks": parsed.spec.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
                        "instances": instances,
                        "warnings": warnings,
                    }),
                );
            }
            exit::OK
        }
        Err(errors) => {
            if format == Format::Table {
                print_errors(file, &errors);
            } else {
                print_data(
                    format,
                    &json!({"valid": false, "errors": error_json(&errors.0)}),
                );
            }
            exit::INVALID
        }
    }
}
