//! `struct`: binary packing for scripts with the API and the format letters
//! of Roberto Ierusalimschy's lua_struct as Redis ships it
//! (`struct.pack`, `struct.unpack`, `struct.size`).
//!
//! Format: `>` big endian, `<` little endian, `![n]` maximum alignment
//! (default 8; alignment starts at 1, i.e. none), `x` one zero byte,
//! `b`/`B` signed/unsigned char, `h`/`H` short (2), `l`/`L` long (8),
//! `T` size_t (8), `i[n]`/`I[n]` integer of n bytes (default 4, at most
//! 32), `f` float, `d` double, `s` zero-terminated string, `c[n]` n bytes
//! (`c0`: the whole string when packing, the preceding number as length
//! when unpacking); spaces are ignored. Native order is little endian, as
//! on the x86-64 and arm64 hosts Redis runs on.

use mlua::{Lua, MultiValue, Table, Value};

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;

fn runtime(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

fn arg_error(n: usize, func: &str, msg: &str) -> mlua::Error {
    runtime(format!("bad argument #{n} to '{func}' ({msg})"))
}

/// The `struct` table.
pub fn lua_struct(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            lua.create_string(pack(lua, &args)?)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            unpack(lua, &args)
        })?,
    )?;
    t.set(
        "size",
        lua.create_function(|lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            let fmt = check_string(lua, &args, 1, "size")?;
            size(&fmt).map(|n| n as f64)
        })?,
    )?;
    Ok(t)
}

struct Header {
    big: bool,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            big: false,
            align: 1,
        }
    }
}

/// Format parser: the letters and their optional numbers.
struct Format<'a> {
    fmt: &'a [u8],
    pos: usize,
}

impl Format<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.fmt.get(self.pos)?;
        self.pos += 1;
        Some(c)
    }

    fn number(&mut self, default: usize) -> mlua::Result<usize> {
        if !self.fmt.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(d) = self.fmt.get(self.pos).filter(|c| c.is_ascii_digit()) {
            a = a
                .checked_mul(10)
                .and_then(|a| a.checked_add(usize::from(d - b'0')))
                .filter(|a| *a <= i32::MAX as usize)
                .ok_or_else(|| runtime("integral size overflow"))?;
            self.pos += 1;
        }
        Ok(a)
    }

    /// lua_struct's `optsize`: the size of option `opt` (0 for options
    /// without one).
    fn size(&mut self, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAXINTSIZE {
                    return Err(runtime(format!(
                        "integral size {n} is larger than limit of {MAXINTSIZE}"
                    )));
                }
                n
            }
            _ => 0,
        })
    }

    /// lua_struct's `controloptions`: endianness, alignment and spaces.
    fn control(&mut self, opt: u8, h: &mut Header, func: &str) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => h.big = true,
            b'<' => h.big = false,
            b'!' => {
                let a = self.number(MAXALIGN)?;
                if a & a.wrapping_sub(1) != 0 {
                    return Err(runtime(format!("alignment {a} is not a power of 2")));
                }
                // `!0` would make every element need a huge padding in C.
                h.align = a.max(1);
            }
            _ => {
                return Err(arg_error(
                    1,
                    func,
                    &format!("invalid format option '{}'", char::from(opt)),
                ))
            }
        }
        Ok(())
    }
}

/// Padding needed before an element of `size` bytes at offset `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    let mask = size.wrapping_sub(1);
    size.wrapping_sub(len & mask) & mask
}

fn type_name(args: &[Value], i: usize) -> &'static str {
    args.get(i - 1).map_or("no value", Value::type_name)
}

/// `luaL_checknumber` of argument `i` (1-based).
fn check_number(lua: &Lua, args: &[Value], i: usize, func: &str) -> mlua::Result<f64> {
    let v = args.get(i - 1).cloned().unwrap_or(Value::Nil);
    lua.coerce_number(v)?.ok_or_else(|| {
        arg_error(
            i,
            func,
            &format!("number expected, got {}", type_name(args, i)),
        )
    })
}

/// `luaL_checklstring` of argument `i` (1-based).
fn check_string(lua: &Lua, args: &[Value], i: usize, func: &str) -> mlua::Result<Vec<u8>> {
    let v = args.get(i - 1).cloned().unwrap_or(Value::Nil);
    match lua.coerce_string(v)? {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => Err(arg_error(
            i,
            func,
            &format!("string expected, got {}", type_name(args, i)),
        )),
    }
}

fn put_integer(out: &mut Vec<u8>, n: f64, big: bool, size: usize) {
    // C: negative numbers through `long`, others through `unsigned long`.
    let mut value: i64 = if n < 0.0 { n as i64 } else { n as u64 as i64 };
    let mut bytes = vec![0u8; size];
    for b in bytes.iter_mut() {
        *b = (value & 0xff) as u8;
        value >>= 8;
    }
    if big {
        bytes.reverse();
    }
    out.extend_from_slice(&bytes);
}

fn ordered<const N: usize>(mut bytes: [u8; N], big: bool) -> [u8; N] {
    if big {
        bytes.reverse();
    }
    bytes
}

fn pack(lua: &Lua, args: &[Value]) -> mlua::Result<Vec<u8>> {
    let fmt = check_string(lua, args, 1, "pack")?;
    let mut f = Format { fmt: &fmt, pos: 0 };
    let mut h = Header::new();
    let mut out = Vec::new();
    let mut arg = 2;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, args, arg, "pack")?;
                arg += 1;
                put_integer(&mut out, n, h.big, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = check_number(lua, args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&ordered(n.to_le_bytes(), h.big));
            }
            b'd' => {
                let n = check_number(lua, args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&ordered(n.to_le_bytes(), h.big));
            }
            b'c' | b's' => {
                let s = check_string(lua, args, arg, "pack")?;
                arg += 1;
                let size = if size == 0 { s.len() } else { size };
                if s.len() < size {
                    // lua_struct reports the argument after the string.
                    return Err(arg_error(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, &mut h, "pack")?,
        }
    }
    Ok(out)
}

fn get_integer(bytes: &[u8], big: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: &u8| l = (l << 8) | u64::from(*b);
    if big {
        bytes.iter().for_each(&mut push);
    } else {
        bytes.iter().rev().for_each(&mut push);
    }
    let size = bytes.len();
    if !signed {
        return l as f64;
    }
    if size >= 8 {
        return l as i64 as f64;
    }
    let mask = u64::MAX << (size * 8 - 1);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: &[Value]) -> mlua::Result<MultiValue> {
    let fmt = check_string(lua, args, 1, "unpack")?;
    let data = check_string(lua, args, 2, "unpack")?;
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(lua, args, 3, "unpack")?,
    };
    let ld = data.len();
    let mut pos = match usize::try_from(start as i64 - 1) {
        Ok(p) if p <= ld => p,
        _ => return Err(arg_error(3, "unpack", "offset must be 1 or greater")),
    };
    let mut f = Format { fmt: &fmt, pos: 0 };
    let mut h = Header::new();
    let mut results: Vec<Value> = Vec::new();
    let too_short = || arg_error(2, "unpack", "data string too short");
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        pos = pos.saturating_add(to_align(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(&data[pos..pos + size], h.big, opt.is_ascii_lowercase());
                results.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                };
                results.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                };
                results.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let previous = match results.last() {
                        Some(v @ (Value::Number(_) | Value::Integer(_) | Value::String(_))) => {
                            lua.coerce_number(v.clone())?
                        }
                        _ => None,
                    };
                    let Some(n) = previous else {
                        return Err(runtime("format 'c0' needs a previous size"));
                    };
                    results.pop();
                    size = if n < 0.0 { usize::MAX } else { n as usize };
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                results.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|b| *b == 0) else {
                    return Err(runtime("unfinished string in data"));
                };
                results.push(Value::String(lua.create_string(&data[pos..pos + end])?));
                size = end + 1;
            }
            _ => f.control(opt, &mut h, "unpack")?,
        }
        pos += size;
    }
    results.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_iter(results))
}

fn size(fmt: &[u8]) -> mlua::Result<usize> {
    let mut f = Format { fmt, pos: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos = pos.saturating_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h, "size")?;
        }
        pos = pos.saturating_add(size);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals()
            .set("struct", lua_struct(&lua).expect("struct"))
            .expect("set");
        lua
    }

    fn hex(lua: &Lua, code: &str) -> String {
        let s: mlua::String = lua.load(code).eval().expect(code);
        s.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn packs_every_format_letter() {
        let lua = lua();
        for (code, want) in [
            ("return struct.pack('>I2', 258)", "0102"),
            ("return struct.pack('<I2', 258)", "0201"),
            ("return struct.pack('bB', -1, 255)", "ffff"),
            ("return struct.pack('>hH', -2, 65535)", "fffeffff"),
            ("return struct.pack('>l', -2)", "fffffffffffffffe"),
            ("return struct.pack('<L', 1)", "0100000000000000"),
            ("return struct.pack('>T', 1)", "0000000000000001"),
            ("return struct.pack('>i', 1)", "00000001"),
            ("return struct.pack('>i3', -1)", "ffffff"),
            ("return struct.pack('>f', 1.5)", "3fc00000"),
            ("return struct.pack('<d', 1.5)", "000000000000f83f"),
            ("return struct.pack('s', 'ab')", "616200"),
            ("return struct.pack('c3', 'abcdef')", "616263"),
            ("return struct.pack('c0', 'abc')", "616263"),
            ("return struct.pack('bxb', 1, 2)", "010002"),
            ("return struct.pack('!4 b i', 1, 2)", "0100000002000000"),
            (
                "return struct.pack('!b d', 1, 0):sub(1, 9)",
                "010000000000000000",
            ),
            ("return struct.pack('>i10', -2)", "fffffffffffffffffffe"),
        ] {
            assert_eq!(hex(&lua, code), want, "{code}");
        }
    }

    #[test]
    fn unpack_round_trips_and_returns_the_next_position() {
        let lua = lua();
        let ok: bool = lua
            .load(
                r#"
                local s = struct.pack('>!4 b h i l d f s c2', -5, -300, 70000, -2^40, 0.1, 2.5, 'hi', 'xy')
                local b, h, i, l, d, f, str, c, nextpos = struct.unpack('>!4 b h i l d f s c2', s)
                return b == -5 and h == -300 and i == 70000 and l == -2^40 and d == 0.1
                  and f == 2.5 and str == 'hi' and c == 'xy' and nextpos == #s + 1
                "#,
            )
            .eval()
            .expect("round trip");
        assert!(ok);
        // c0 takes its length from the number before it (which it
        // consumes).
        let (s, nextpos): (String, f64) = lua
            .load("return struct.unpack('B c0', struct.pack('B c0', 3, 'abc'))")
            .eval()
            .expect("c0");
        assert_eq!((s.as_str(), nextpos), ("abc", 5.0));
        let (v, nextpos): (f64, f64) = lua
            .load("return struct.unpack('>H', '\\0\\0\\1\\2', 3)")
            .eval()
            .expect("offset");
        assert_eq!((v, nextpos), (258.0, 5.0));
        let size: f64 = lua
            .load("return struct.size('!4 b i d')")
            .eval()
            .expect("size");
        assert_eq!(size, 16.0);
    }

    #[test]
    fn errors_follow_lua_struct() {
        let lua = lua();
        for (code, want) in [
            (
                "return struct.pack('z', 1)",
                "bad argument #1 to 'pack' (invalid format option 'z')",
            ),
            (
                "return struct.pack('i', 'x')",
                "bad argument #2 to 'pack' (number expected, got string)",
            ),
            (
                "return struct.pack('i')",
                "bad argument #2 to 'pack' (number expected, got no value)",
            ),
            (
                "return struct.pack('c5', 'ab')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "return struct.pack('i40', 1)",
                "integral size 40 is larger than limit of 32",
            ),
            (
                "return struct.pack('!3 i', 1)",
                "alignment 3 is not a power of 2",
            ),
            (
                "return struct.pack('i99999999999', 1)",
                "integral size overflow",
            ),
            (
                "return struct.unpack('i', 'ab')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "return struct.unpack('i', 'abcd', 0)",
                "bad argument #3 to 'unpack' (offset must be 1 or greater)",
            ),
            (
                "return struct.unpack('i', 'abcd', 9)",
                "offset must be 1 or greater",
            ),
            (
                "return struct.unpack('s', 'ab')",
                "unfinished string in data",
            ),
            (
                "return struct.unpack('c0', 'ab')",
                "format 'c0' needs a previous size",
            ),
            (
                "return struct.unpack('B c0', '\\255ab')",
                "data string too short",
            ),
            (
                "return struct.size('s')",
                "bad argument #1 to 'size' (option 's' has no fixed size)",
            ),
            ("return struct.size('c0')", "option 'c0' has no fixed size"),
        ] {
            let err = lua.load(code).eval::<Value>().expect_err(code).to_string();
            assert!(err.contains(want), "{code}: {err}");
        }
    }
}
