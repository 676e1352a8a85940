//! Writes the seed inputs of every target into `corpus/<target>/seed-N`
//! (or under the directory given as the first argument).
fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus".to_string());
    for (n, (target, bytes)) in pcp_secure_fuzz::seeds().into_iter().enumerate() {
        let dir = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(format!("seed-{n}")), bytes).expect("seed file");
    }
}
