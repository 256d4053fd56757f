//! Rendering data as a table, JSON or YAML.

use serde::Serialize;

use crate::Format;

/// Prints `value` as JSON or YAML on stdout (tables are rendered by each command).
pub fn print_data(format: Format, value: &impl Serialize) {
    let text = match format {
        Format::Yaml => serde_saphyr::to_string(value).map_err(|e| e.to_string()),
        Format::Json | Format::Table => {
            serde_json::to_string_pretty(value).map_err(|e| e.to_string())
        }
    };
    match text {
        Ok(t) => println!("{}", t.trim_end()),
        Err(e) => eprintln!("error: cannot render output: {e}"),
    }
}
