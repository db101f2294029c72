//! Progress bars for long CLI work, on stderr; hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed}").expect("valid template").progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
