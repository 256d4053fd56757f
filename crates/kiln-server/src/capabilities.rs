//! What this version of Kiln can run. A spec that asks for more is refused before anything is
//! stored, with an error naming the field (rather than accepted and failed later).

use kiln_core::model::{Image, JobSpec};
use kiln_core::spec::SpecError;

/// Every field of `spec` that needs a feature this build does not have yet.
pub fn unsupported(spec: &JobSpec) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let mut err = |path: String, message: String, hint: &str| {
        errors.push(SpecError {
            path,
            message,
            hint: Some(hint.to_string()),
        })
    };
    for t in &spec.tasks {
        let p = |f: &str| format!("tasks.{}.{f}", t.name);
        if let Image::Docker(image) = &t.image {
            err(
                p("image"),
                format!("tasks run on the host; the Docker image `{image}` cannot be used yet"),
                "remove `image` (or set `image: host`)",
            );
        }
        if t.network.as_deref().is_some_and(|n| n != "default") {
            err(
                p("network"),
                "the host runtime has no private networks".into(),
                "remove `network` for host tasks",
            );
        }
        for (field, used) in [
            ("inputs", !t.inputs.is_empty()),
            ("outputs", !t.outputs.is_empty()),
            ("stdout", t.stdout.is_some()),
            ("stderr", t.stderr.is_some()),
        ] {
            if used {
                err(
                    p(field),
                    "remote storage mapping is not available yet".into(),
                    "remove it; output is kept under the state directory's logs/",
                );
            }
        }
    }
    errors
}
