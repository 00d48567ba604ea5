//! Encoding rows for `COPY … FROM STDIN` in PostgreSQL's text format.
//!
//! Text format is used rather than binary because every value is already text (exact
//! decimals, timestamps, JSON): PostgreSQL parses `numeric` and `jsonb` from it directly, and
//! no value passes through a float. Fields are tab-separated, rows end in `\n`, NULL is `\N`;
//! backslash, tab, newline and carriage return are escaped. NUL bytes never reach here: the
//! parse stage removes them from every value.

/// A buffer of COPY rows for one staging table.
#[derive(Debug, Default)]
pub struct CopyBuf {
    buf: Vec<u8>,
    first: bool,
    rows: usize,
}

impl CopyBuf {
    /// Creates an empty buffer.
    pub fn new() -> Self {
        Self { buf: Vec::with_capacity(64 * 1024), first: true, rows: 0 }
    }

    /// Returns the encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Returns how many rows were ended.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns how many bytes are encoded so far (after [`CopyBuf::end_row`]: where the
    /// next row starts).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Tells whether nothing is encoded yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b'\t');
        }
        self.first = false;
    }

    /// Appends a text field, escaped.
    pub fn text(&mut self, s: &str) {
        self.sep();
        escape_into(&mut self.buf, s);
    }

    /// Appends an optional text field (`None` is NULL).
    pub fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    /// Appends NULL.
    pub fn null(&mut self) {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
    }

    /// Appends fields already encoded (tab-separated, escaped), as they are.
    pub fn encoded(&mut self, fields: &[u8]) {
        self.sep();
        self.buf.extend_from_slice(fields);
    }

    /// Appends an integer, or NULL.
    pub fn int(&mut self, n: Option<i64>) {
        match n {
            Some(n) => {
                self.sep();
                use std::io::Write;
                write!(self.buf, "{n}").expect("writing to a Vec cannot fail");
            }
            None => self.null(),
        }
    }

    /// Appends a `text[]` literal holding `items`.
    pub fn text_array(&mut self, items: &[String]) {
        let mut lit = String::with_capacity(2 + items.iter().map(|s| s.len() + 3).sum::<usize>());
        lit.push('{');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                lit.push(',');
            }
            lit.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    lit.push('\\');
                }
                lit.push(c);
            }
            lit.push('"');
        }
        lit.push('}');
        self.text(&lit);
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.first = true;
        self.rows += 1;
    }
}

fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r')) {
        buf.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b => buf.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped_and_null_is_marked() {
        let mut c = CopyBuf::new();
        c.text("a\tb\\c\nd");
        c.opt(None);
        c.text_array(&["x\"y".into(), "z\\".into()]);
        c.end_row();
        assert_eq!(
            String::from_utf8(c.into_bytes()).unwrap(),
            "a\\tb\\\\c\\nd\t\\N\t{\"x\\\\\"y\",\"z\\\\\\\\\"}\n"
        );
    }
}
