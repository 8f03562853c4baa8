//! Listing a component's imports without compiling it.

use std::path::Path;

use anyhow::{Context, Result};
use wasmparser::{Parser, Payload};

/// The interface names a component imports, e.g.
/// `wasi:http/outgoing-handler@0.2.6` or `spin:sqlite/sqlite@3.0.0`, sorted
/// and de-duplicated. Only the outer component's imports are listed (what
/// the host must provide), not those of nested core modules.
///
/// Fails if the file cannot be read or is not a valid component.
pub fn component_imports(wasm: &Path) -> Result<Vec<String>> {
    let bytes =
        std::fs::read(wasm).with_context(|| format!("failed to read {}", wasm.display()))?;
    let mut imports = vec![];
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload
            .with_context(|| format!("{} is not a valid wasm component", wasm.display()))?
        {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    anyhow::bail!("{} is a core module, not a component", wasm.display());
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    imports.push(import?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    imports.sort();
    imports.dedup();
    Ok(imports)
}
