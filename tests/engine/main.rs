//! Behavioural tests of the engine on the embedded profile: real SQLite files and real
//! content files in a temporary data dir, a manual clock, no sleeping.

mod aws;
mod guarantees;
mod helpers;
mod lifecycle;
mod reconcile;
mod storage;
mod sweeper;

#[test]
fn the_readme_documents_every_setting_and_nothing_else() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for (key, meaning, default) in lethe::config::KEYS {
        let variable = lethe::config::env_name(key);
        let row = format!("| `{variable}` | `{key}` | {meaning} | {default} |");
        assert!(
            readme.lines().any(|line| line == row),
            "README lacks the row, or it drifted from the code:\n{row}"
        );
    }
    // Rows of the configuration table: | `LETHE_X` | `x` | meaning | default |
    let documented = readme
        .lines()
        .filter(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let variable = cells
                .first()
                .and_then(|c| c.strip_prefix("| `LETHE_"))
                .map(|c| c.trim_end_matches('`').to_ascii_lowercase());
            variable.is_some_and(|v| cells.get(1).copied() == Some(format!("`{v}`").as_str()))
        })
        .count();
    assert_eq!(
        documented,
        lethe::config::KEYS.len(),
        "README documents a setting the code does not have"
    );
}
