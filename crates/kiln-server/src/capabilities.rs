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
        // On the host an instance's files live in its working directory: a mapping may not
        // point outside it (containers, where absolute targets are fine, come later).
        let absolute = |p: &str| t.image == Image::Host && p.starts_with('/');
        for (i, m) in t.inputs.iter().enumerate() {
            if absolute(&m.target) {
                err(
                    p(&format!("inputs[{i}].target")),
                    format!(
                        "`{}` is absolute; host tasks map inputs inside their working directory",
                        m.target
                    ),
                    "use a relative path (the working directory is BATCH_WORK_DIR)",
                );
            }
        }
        for (i, m) in t.outputs.iter().enumerate() {
            if absolute(&m.source) {
                err(
                    p(&format!("outputs[{i}].source")),
                    format!(
                        "`{}` is absolute; host tasks upload outputs from their working directory",
                        m.source
                    ),
                    "use a relative path (the working directory is BATCH_WORK_DIR)",
                );
            }
        }
    }
    errors
}
