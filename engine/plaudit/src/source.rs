//! Opening a moments file (or `-`, stdin) for the commands that read one, with a progress bar
//! on stderr for large files when stderr is a terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

/// A moments file being read; `bar` advances with the bytes read (hidden when not useful).
pub struct Source {
    pub name: String,
    pub reader: ProgressReader,
    pub bar: ProgressBar,
}

/// Opens `path`; `progress` asks for a bar (it still shows only for files over 1 MB on a
/// terminal).
pub fn open(path: &Path, progress: bool) -> anyhow::Result<Source> {
    let name = path.display().to_string();
    let (inner, size): (Box<dyn BufRead>, Option<u64>) = if name == "-" {
        (Box::new(BufReader::new(std::io::stdin().lock())), None)
    } else {
        let f = File::open(path).with_context(|| format!("cannot open {name}"))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 16, f)), size)
    };
    let bar = match size {
        Some(n) if progress && std::io::stderr().is_terminal() && n > 1 << 20 => {
            let bar = ProgressBar::new(n);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    };
    Ok(Source { name, reader: ProgressReader { inner, bar: bar.clone() }, bar })
}

/// Counts bytes read into the progress bar.
pub struct ProgressReader {
    inner: Box<dyn BufRead>,
    bar: ProgressBar,
}

impl std::io::Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl BufRead for ProgressReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.bar.inc(amt as u64);
        self.inner.consume(amt);
    }
}
