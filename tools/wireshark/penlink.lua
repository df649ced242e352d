-- penlink.lua: a Wireshark dissector for penlink, the USB protocol of a
-- microneedling pen (docs/protocol.md; docs/engineer-guide.md shows its use).
--
-- * Finds penlink frames in USB bulk transfers (usbmon on Linux, USBPcap on
--   Windows, `penlink --trace`): by VID:PID 1209:0001 and interface class 0xFF
--   when the capture holds the pen's descriptors, else by the frame magic
--   "PNLK" (a heuristic on every bulk transfer). Also the penlink stream link
--   type of `penlink --trace` over a simulated pen (LINKTYPE_USER0, with a
--   4-byte pseudo-header: 'p', 1, direction, 0).
-- * Each endpoint (or stream direction) is one byte stream: frames split
--   across transfers are reassembled, transfers holding several frames are
--   split, garbage between frames is shown and skipped, a bad header check or
--   CRC is flagged (expert info) and the search for the next frame resumes at
--   the byte after the refused frame's start, as a penlink receiver does.
-- * The payload goes to Wireshark's protobuf dissector as
--   penlink.v1.Envelope (add protocol/ to the protobuf search paths; with
--   protobuf.pbf_as_hf every field is a pbf.penlink.v1.* field).
-- * LogChunk data is inflated and its RecordBatch decoded: every record with
--   seq, time, kind and fields, as `penlink decode` prints them.
-- * Requests and replies are paired by request id (penlink.request_in,
--   penlink.response_in); a reply with no request is flagged.
--
-- Load it with `wireshark -X lua_script:tools/wireshark/penlink.lua`, or
-- install it into Wireshark's plugin folder (`cmake --install`).

local penlink = Proto("penlink", "penlink pen protocol")
local penlink_stream = Proto("penlink_stream", "penlink stream capture")

local MAGIC = "PNLK"
local HEADER = 16
local MAX_PAYLOAD = 1024 * 1024
local MAX_RAW = 512 * 1024 -- PL_CHUNK_MAX_RAW: no chunk inflates to more
local VID_PID = 0x12090001
local CLASS_VENDOR = 0xFF

local BODIES = {
    [10] = "hello", [11] = "hello_reply", [12] = "get_info", [13] = "device_info",
    [14] = "get_config", [15] = "config", [16] = "set_config", [17] = "set_config_reply",
    [18] = "pull_log", [19] = "log_chunk", [20] = "log_end", [21] = "ack_log",
    [22] = "ack_log_reply", [23] = "set_clock", [24] = "set_clock_reply", [25] = "error",
    [26] = "get_nonce", [27] = "nonce", [28] = "identify", [29] = "identify_reply",
}
local REQUESTS = { [10] = true, [12] = true, [14] = true, [16] = true, [18] = true,
                   [21] = true, [23] = true, [26] = true, [28] = true }
local KINDS = {
    [1] = "power_on", [2] = "power_off", [3] = "treatment_start", [4] = "treatment_end",
    [5] = "cartridge_inserted", [6] = "cartridge_removed", [7] = "cartridge_refused",
    [8] = "depth_changed", [9] = "speed_changed", [10] = "fault", [11] = "config_changed",
    [12] = "clock_set", [13] = "log_overflow", [14] = "security_event",
}
-- RecordBatch columns: mask bit i is protobuf field 6 + i
local COLUMNS = { "depth_um", "speed_sps", "duration_ms", "cartridge_serial", "cartridge_uses",
                  "lifetime_cartridges", "strokes", "fault_code", "config_revision",
                  "clock_delta_ms", "dropped" }
local SIGNED_COLUMN = { clock_delta_ms = true }

local f = penlink.fields
f.magic = ProtoField.string("penlink.magic", "Magic")
f.version = ProtoField.uint8("penlink.version", "Framing version")
f.flags = ProtoField.uint8("penlink.flags", "Flags", base.HEX)
f.length = ProtoField.uint32("penlink.length", "Payload length")
f.crc = ProtoField.uint32("penlink.crc", "Payload CRC-32", base.HEX)
f.crc_status = ProtoField.string("penlink.crc.status", "Payload CRC status")
f.hcheck = ProtoField.uint16("penlink.header_check", "Header check", base.HEX)
f.hcheck_status = ProtoField.string("penlink.header_check.status", "Header check status")
f.direction = ProtoField.string("penlink.direction", "Direction")
f.request_id = ProtoField.uint32("penlink.request_id", "Request id")
f.message = ProtoField.string("penlink.message", "Message")
f.request_in = ProtoField.framenum("penlink.request_in", "Request in", base.NONE, frametype.REQUEST)
f.response_in = ProtoField.framenum("penlink.response_in", "Response in", base.NONE,
                                    frametype.RESPONSE)
f.begins_in = ProtoField.framenum("penlink.begins_in", "Frame begins in")
f.garbage = ProtoField.bytes("penlink.garbage", "Not a frame")
f.batch_first_seq = ProtoField.uint64("penlink.batch.first_seq", "First seq")
f.batch_count = ProtoField.uint32("penlink.batch.count", "Records")
f.record = ProtoField.none("penlink.record", "Record")
f.rec_seq = ProtoField.uint64("penlink.record.seq", "Seq")
f.rec_time_ms = ProtoField.int64("penlink.record.time_ms", "Time (ms since the epoch, pen clock)")
f.rec_time = ProtoField.string("penlink.record.time", "Time")
f.rec_kind = ProtoField.uint32("penlink.record.kind", "Kind", base.DEC, KINDS)
local rec_field = {}
for _, name in ipairs(COLUMNS) do
    if SIGNED_COLUMN[name] then
        rec_field[name] = ProtoField.int64("penlink.record." .. name, name)
    else
        rec_field[name] = ProtoField.uint64("penlink.record." .. name, name)
    end
    f["rec_" .. name] = rec_field[name]
end

local ef_crc = ProtoExpert.new("penlink.crc.bad", "Payload CRC mismatch", expert.group.CHECKSUM,
                               expert.severity.ERROR)
local ef_hcheck = ProtoExpert.new("penlink.header_check.bad", "Header check mismatch",
                                  expert.group.CHECKSUM, expert.severity.ERROR)
local ef_version = ProtoExpert.new("penlink.version.unknown", "Unknown framing version",
                                   expert.group.MALFORMED, expert.severity.ERROR)
local ef_large = ProtoExpert.new("penlink.length.too_large", "Payload length above 1 MiB",
                                 expert.group.MALFORMED, expert.severity.ERROR)
local ef_garbage = ProtoExpert.new("penlink.garbage", "Bytes that are not a penlink frame",
                                   expert.group.MALFORMED, expert.severity.WARN)
local ef_orphan = ProtoExpert.new("penlink.reply_without_request", "Reply without a request",
                                  expert.group.SEQUENCE, expert.severity.WARN)
local ef_chunk = ProtoExpert.new("penlink.chunk.bad", "LogChunk data does not decode",
                                 expert.group.MALFORMED, expert.severity.ERROR)
local ef_skipped = ProtoExpert.new("penlink.resync.skipped",
                                   "Frame inside a refused frame skipped unchecked",
                                   expert.group.MALFORMED, expert.severity.WARN)
local ef_envelope = ProtoExpert.new("penlink.envelope.bad", "Payload is not an Envelope",
                                    expert.group.MALFORMED, expert.severity.ERROR)
penlink.experts = { ef_crc, ef_hcheck, ef_version, ef_large, ef_garbage, ef_orphan, ef_chunk,
                    ef_envelope, ef_skipped }

local pref = penlink.prefs
pref.protobuf = Pref.bool("Dissect payloads with the protobuf dissector", true,
                          "Hand each Envelope to Wireshark's protobuf dissector "
                              .. "(add protocol/ to the protobuf search paths)")

local protobuf = Dissector.get("protobuf")
local usb_bus_f = Field.new("usb.bus_id")
local usb_addr_f = Field.new("usb.device_address")
local usb_ep_f = Field.new("usb.endpoint_address")
local usb_xfer_f = Field.new("usb.transfer_type")
local iface_f = Field.new("frame.interface_id")

-- ---- CRC-32 (zlib's, docs/protocol.md section 2) ----------------------------

local crc_table = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if bit32.band(c, 1) == 1 then
            c = bit32.bxor(0xEDB88320, bit32.rshift(c, 1))
        else
            c = bit32.rshift(c, 1)
        end
    end
    crc_table[i] = c
end

local function crc32(s, i, j)
    local c = 0xFFFFFFFF
    local band, bxor, rshift, byte = bit32.band, bit32.bxor, bit32.rshift, string.byte
    for k = i, j do
        c = bxor(crc_table[band(bxor(c, byte(s, k)), 0xFF)], rshift(c, 8))
    end
    return bxor(c, 0xFFFFFFFF)
end

local function le32(s, i)
    local a, b, c, d = s:byte(i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

-- ---- protobuf wire format (only what the dissector needs itself) -----------

local ZERO = UInt64.new(0, 0)

local function varint(s, pos, stop)
    local v, shift = ZERO, 0
    while pos <= stop do
        local b = s:byte(pos)
        pos = pos + 1
        if shift < 64 then
            v = v:bor(UInt64.new(bit32.band(b, 0x7F), 0):lshift(shift))
        end
        if b < 0x80 then
            return v, pos
        end
        shift = shift + 7
        if shift >= 70 then
            return nil
        end
    end
    return nil
end

-- Iterates the fields of a message in s[i..j]: number, wire type, value
-- (UInt64 for varints, {start, stop} of the bytes for length-delimited).
local function fields(s, i, j)
    local pos = i
    return function()
        if pos > j then
            return nil
        end
        local key
        key, pos = varint(s, pos, j)
        if not key then
            error("bad key")
        end
        local num, wt = key:rshift(3):tonumber(), key:band(7):tonumber()
        if wt == 0 then
            local v
            v, pos = varint(s, pos, j)
            if not v then
                error("bad varint")
            end
            return num, wt, v
        elseif wt == 2 then
            local len
            len, pos = varint(s, pos, j)
            if not len or len:tonumber() > j - pos + 1 then
                error("bad length")
            end
            local a = pos
            pos = pos + len:tonumber()
            return num, wt, { a, pos - 1 }
        elseif wt == 1 then
            pos = pos + 8
        elseif wt == 5 then
            pos = pos + 4
        else
            error("bad wire type")
        end
        if pos > j + 1 then
            error("runs past the end")
        end
        return num, wt, nil
    end
end

local function unzigzag(v)
    local r = v:rshift(1)
    if v:band(1):tonumber() == 1 then
        r = r:bnot()
    end
    return r
end

local function packed(s, span, zig)
    local out, pos = {}, span[1]
    while pos <= span[2] do
        local v
        v, pos = varint(s, pos, span[2])
        if not v then
            error("bad packed value")
        end
        out[#out + 1] = zig and unzigzag(v) or v
    end
    return out
end

local function signed(u)
    return Int64.new(u:lower(), u:higher())
end

-- The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
-- civil_from_days), exact for every day an int64 of milliseconds reaches.
local function civil(z)
    z = z + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                            - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end

-- ms since the epoch (an Int64) as penlink decode prints it: ISO 8601 UTC with
-- milliseconds, the year as glibc's strftime %Y writes it (no padding, a
-- minus sign before the common era), for every int64 value.
local function iso_time(ms)
    local k = Int64.new(1000)
    local sec, frac = ms / k, ms % k -- C division: towards zero
    if frac < Int64.new(0) then
        sec, frac = sec - 1, frac + k
    end
    local day = Int64.new(86400)
    local days, sod = sec / day, sec % day
    if sod < Int64.new(0) then
        days, sod = days - 1, sod + day
    end
    local y, m, d = civil(days:tonumber()) -- below 2^53: exact
    local t = sod:tonumber()
    return string.format("%d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, math.floor(t / 3600),
                         math.floor(t / 60) % 60, t % 60, frac:tonumber())
end

-- A RecordBatch (docs/protocol.md section 6) into records, as penlink decode
-- reads it: {seq, time (Int64), kind, fields = {name = value}}.
local function decode_batch(s)
    local first_seq, count, time_base, width = ZERO, 0, ZERO, 0
    local layout, kinds, planes, columns = {}, {}, nil, {}
    for num, wt, v in fields(s, 1, #s) do
        if num == 1 and wt == 0 then
            first_seq = v
        elseif num == 2 and wt == 0 then
            count = v:tonumber()
        elseif num == 3 and wt == 2 then
            layout = packed(s, v, false)
        elseif num == 4 and wt == 2 then
            kinds = packed(s, v, false)
        elseif num == 5 and wt == 0 then
            time_base = unzigzag(v)
        elseif num >= 6 and num <= 16 and wt == 2 then
            columns[num - 5] = packed(s, v, true)
        elseif num == 17 and wt == 0 then
            width = v:tonumber()
        elseif num == 18 and wt == 2 then
            planes = s:sub(v[1], v[2])
        end
    end
    if #kinds ~= count or #layout % 2 ~= 0 then
        error("kind column or layout of the wrong size")
    end
    -- as penlink decode (protocol/src/chunk_codec.c): kinds and masks are 32-bit,
    -- and the seqs of a batch do not wrap past 2^64
    for _, v in ipairs(layout) do
        if v:higher() ~= 0 then
            error("a layout kind or mask beyond 32 bits", 0)
        end
    end
    for _, v in ipairs(kinds) do
        if v:higher() ~= 0 then
            error("a kind beyond 32 bits", 0)
        end
    end
    if count > 0 and first_seq + (count - 1) < first_seq then
        error("chunk sequence numbers inconsistent: first_seq " .. tostring(first_seq) .. " and "
              .. count .. " records wrap past 2^64", 0)
    end
    if count > 0 and (width < 1 or width > 8 or not planes or #planes ~= count * width) then
        error("time planes of the wrong size")
    end
    local mask = {}
    for k = 1, #layout, 2 do
        mask[layout[k]:tonumber()] = layout[k + 1]:tonumber()
    end
    local records, used, acc = {}, {}, {}
    for c = 1, #COLUMNS do
        used[c], acc[c] = 0, ZERO
    end
    local t = time_base
    for i = 1, count do
        local kind = kinds[i]:tonumber()
        local m = mask[kind]
        if not m then
            error("a kind the layout does not describe")
        end
        local d = ZERO
        for b = 0, width - 1 do
            d = d:bor(UInt64.new(planes:byte(b * count + i), 0):lshift(8 * b))
        end
        t = t + unzigzag(d)
        local rec = { seq = first_seq + (i - 1), time = signed(t), kind = kind, fields = {} }
        for c = 1, #COLUMNS do
            if bit32.band(m, bit32.lshift(1, c - 1)) ~= 0 then
                used[c] = used[c] + 1
                local col = columns[c]
                if not col or not col[used[c]] then
                    error("column " .. COLUMNS[c] .. " too short")
                end
                acc[c] = acc[c] + col[used[c]]
                local name = COLUMNS[c]
                rec.fields[#rec.fields + 1] = { name, SIGNED_COLUMN[name] and signed(acc[c]) or acc[c] }
            end
        end
        records[i] = rec
    end
    for c = 1, #COLUMNS do
        if columns[c] and #columns[c] ~= used[c] then
            error("column " .. COLUMNS[c] .. " too long")
        end
    end
    return first_seq, records
end

-- ---- zlib streams, inflated within a bound (RFC 1950, 1951) --------------------

-- Wireshark's own uncompress inflates whatever a stream holds (a few hundred
-- bytes may stand for gigabytes), so LogChunk data is inflated here, as
-- penlink decode does it: never more than the chunk's raw_size and the
-- protocol's limit on a chunk (PL_CHUNK_MAX_RAW), stopping at the first
-- byte beyond them.
local P2 = {}
for i = 0, 48 do
    P2[i] = 2 ^ i
end
local LBASE = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83,
                99, 115, 131, 163, 195, 227, 258 }
local LEXT = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 }
local DBASE = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 }
local DEXT = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
               12, 13, 13 }
local CL_ORDER = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 }

-- A canonical Huffman code from code lengths[0..n-1] (as zlib's puff builds
-- it). An incomplete code is refused as zlib refuses it: allowed only for the
-- fixed codes, a code with no symbol, or (not the code-length code) a single
-- code of one bit.
local function huffman(lengths, n, kind)
    local count, offs, symbol = {}, {}, {}
    for l = 0, 15 do
        count[l] = 0
    end
    for sym = 0, n - 1 do
        count[lengths[sym]] = count[lengths[sym]] + 1
    end
    local left, max = 1, 0
    for l = 1, 15 do
        left = left * 2 - count[l]
        if left < 0 then
            error("over-subscribed Huffman code", 0)
        end
        if count[l] > 0 then
            max = l
        end
    end
    if left > 0 and kind ~= "fixed" and max ~= 0 and (kind == "codes" or max ~= 1) then
        error("incomplete Huffman code", 0)
    end
    offs[1] = 0
    for l = 1, 14 do
        offs[l + 1] = offs[l] + count[l]
    end
    for sym = 0, n - 1 do
        local l = lengths[sym]
        if l ~= 0 then
            symbol[offs[l]] = sym
            offs[l] = offs[l] + 1
        end
    end
    return { count = count, symbol = symbol }
end

local FIXED_LEN, FIXED_DIST
do
    local l = {}
    for i = 0, 143 do l[i] = 8 end
    for i = 144, 255 do l[i] = 9 end
    for i = 256, 279 do l[i] = 7 end
    for i = 280, 287 do l[i] = 8 end
    FIXED_LEN = huffman(l, 288, "fixed")
    local d = {}
    for i = 0, 29 do d[i] = 5 end
    FIXED_DIST = huffman(d, 30, "fixed")
end

-- Inflates the zlib stream s (a Lua string) into at most limit bytes.
-- Returns the bytes, or nil and why: "too large" when the stream holds more
-- than limit bytes, else what is malformed. The stream must end with s.
local function inflate(s, limit)
    local n, pos, bitbuf, bitcnt = #s, 3, 0, 0
    local out, olen = {}, 0
    local function bits(k)
        while bitcnt < k do
            if pos > n then
                error("cut short", 0)
            end
            bitbuf = bitbuf + s:byte(pos) * P2[bitcnt]
            pos, bitcnt = pos + 1, bitcnt + 8
        end
        local v = bitbuf % P2[k]
        bitbuf, bitcnt = (bitbuf - v) / P2[k], bitcnt - k
        return v
    end
    local function decode(h)
        local code, first, index = 0, 0, 0
        local count, symbol = h.count, h.symbol
        for l = 1, 15 do
            code = code + bits(1)
            local c = count[l]
            if code - c < first then
                return symbol[index + (code - first)]
            end
            index, first = index + c, (first + c) * 2
            code = code * 2
        end
        error("invalid Huffman code", 0)
    end
    local function codes(lencode, distcode)
        while true do
            local sym = decode(lencode)
            if sym < 256 then
                if olen >= limit then
                    error("too large", 0)
                end
                olen = olen + 1
                out[olen] = sym
            elseif sym == 256 then
                return
            else
                sym = sym - 257
                if sym >= 29 then
                    error("invalid length code", 0)
                end
                local len = LBASE[sym + 1] + bits(LEXT[sym + 1])
                local ds = decode(distcode)
                if ds >= 30 then
                    error("invalid distance code", 0)
                end
                local dist = DBASE[ds + 1] + bits(DEXT[ds + 1])
                if dist > olen then
                    error("distance too far back", 0)
                end
                if olen + len > limit then
                    error("too large", 0)
                end
                for _ = 1, len do
                    olen = olen + 1
                    out[olen] = out[olen - dist]
                end
            end
        end
    end
    local function dynamic()
        local nlen, ndist, ncode = bits(5) + 257, bits(5) + 1, bits(4) + 4
        if nlen > 286 or ndist > 30 then
            error("too many length or distance codes", 0)
        end
        local lengths = {}
        for i = 0, 18 do
            lengths[i] = 0
        end
        for i = 1, ncode do
            lengths[CL_ORDER[i]] = bits(3)
        end
        local lencode = huffman(lengths, 19, "codes")
        local all, i = {}, 0
        while i < nlen + ndist do
            local sym = decode(lencode)
            if sym < 16 then
                all[i], i = sym, i + 1
            else
                local len, rep = 0, 0
                if sym == 16 then
                    if i == 0 then
                        error("repeat with no first length", 0)
                    end
                    len, rep = all[i - 1], 3 + bits(2)
                elseif sym == 17 then
                    rep = 3 + bits(3)
                else
                    rep = 11 + bits(7)
                end
                if i + rep > nlen + ndist then
                    error("too many lengths", 0)
                end
                for _ = 1, rep do
                    all[i], i = len, i + 1
                end
            end
        end
        if all[256] == 0 then
            error("no end-of-block code", 0)
        end
        local ll, dl = {}, {}
        for k = 0, nlen - 1 do
            ll[k] = all[k]
        end
        for k = 0, ndist - 1 do
            dl[k] = all[nlen + k]
        end
        codes(huffman(ll, nlen, "lengths"), huffman(dl, ndist, "distances"))
    end
    local ok, err = pcall(function()
        local cmf, flg = s:byte(1, 2)
        if n < 6 or cmf % 16 ~= 8 or cmf >= 128 or (cmf * 256 + flg) % 31 ~= 0
           or bit32.band(flg, 0x20) ~= 0 then
            error("not a zlib stream", 0)
        end
        repeat
            local last, btype = bits(1), bits(2)
            if btype == 0 then
                bitbuf, bitcnt = 0, 0
                if pos + 3 > n then
                    error("cut short", 0)
                end
                local a, b, c, d = s:byte(pos, pos + 3)
                local len = a + b * 256
                if len ~= 65535 - (c + d * 256) then
                    error("stored block length mismatch", 0)
                end
                pos = pos + 4
                if pos + len - 1 > n then
                    error("cut short", 0)
                end
                if olen + len > limit then
                    error("too large", 0)
                end
                for k = 0, len - 1 do
                    olen = olen + 1
                    out[olen] = s:byte(pos + k)
                end
                pos = pos + len
            elseif btype == 1 then
                codes(FIXED_LEN, FIXED_DIST)
            elseif btype == 2 then
                dynamic()
            else
                error("invalid block type", 0)
            end
        until last == 1
        -- the Adler-32 of the bytes, and nothing after it
        if pos + 3 ~= n then
            error(pos + 3 > n and "cut short" or "bytes after the stream", 0)
        end
        local a, b = 1, 0
        for k = 1, olen do
            a = (a + out[k]) % 65521
            b = (b + a) % 65521
        end
        local w, x, y, z = s:byte(pos, pos + 3)
        if b * 65536 + a ~= ((w * 256 + x) * 256 + y) * 256 + z then
            error("Adler-32 mismatch", 0)
        end
    end)
    if not ok then
        return nil, err
    end
    local parts = {}
    for k = 1, olen, 4096 do
        parts[#parts + 1] = string.char(table.unpack(out, k, math.min(k + 4095, olen)))
    end
    return table.concat(parts)
end

-- ---- the byte streams --------------------------------------------------------

-- Per conversation key: pending bytes and where they began (first pass only).
local streams = {}
-- Per packet number: what was found in it, computed on the first pass.
local found = {}
-- Per conversation: request id -> frame number; per frame: its pairing.
local requests, pairing, replied = {}, {}, {}

local function reset()
    streams, found, requests, pairing, replied = {}, {}, {}, {}, {}
end

-- Cuts the stream's bytes into frames and damaged stretches (docs/protocol.md
-- section 2, "Receiving"). Each item: {kind, bytes, begins, [offset]}.
--
-- The work stays linear in the bytes, as in penlink's receivers (rule 6):
-- bytes that cannot complete the frame being waited for are only set aside
-- (not joined to the others on every packet), and a frame starting inside a
-- frame refused for its CRC is checked only while such checks have cost no
-- more than the stream's bytes so far plus one largest payload; past that it
-- is shown as skipped, unchecked.
local function split(st, data, number, base_off)
    st.taken = st.taken + #data
    if st.pending + #data < st.need then
        st.pieces[#st.pieces + 1] = data
        st.pending = st.pending + #data
        return {}
    end
    if #st.pieces > 0 then
        st.buf = st.buf .. table.concat(st.pieces)
        st.pieces = {}
    end
    local s = st.buf .. data
    local start_off = base_off - #st.buf -- offset in this packet's data of s[1]
    local items, pos = {}, 1
    local need = 0
    local function item(kind, i, j, why)
        local it = { kind = kind, bytes = s:sub(i, j), why = why,
                     begins = (i <= #st.buf) and st.begins or number }
        if i > #st.buf then
            it.offset = start_off + i - 1
        end
        items[#items + 1] = it
    end
    while true do
        local i = s:find(MAGIC, pos, true)
        if not i then
            -- keep a tail that may be the start of a magic
            local keep = math.max(pos, #s - 2)
            if keep > pos and not st.hunting then
                item("garbage", pos, keep - 1)
            end
            pos = keep
            break
        end
        if i > pos and not st.hunting then
            item("garbage", pos, i - 1)
        end
        st.hunting = false
        if #s - i + 1 < HEADER then
            pos, need = i, HEADER
            break
        end
        local version, len = s:byte(i + 4), le32(s, i + 6)
        local hc = s:byte(i + 14) + s:byte(i + 15) * 256
        local at = st.base + i - 1 -- stream offset of the candidate
        local nested = at < st.refused_end
        if version ~= 1 then
            item("bad", i, i + HEADER - 1, "version")
            pos, st.hunting = i + 1, true
        elseif bit32.band(crc32(s, i, i + 13), 0xFFFF) ~= hc then
            item("bad", i, i + HEADER - 1, "header")
            pos, st.hunting = i + 1, true
        elseif len > MAX_PAYLOAD then
            item("bad", i, i + HEADER - 1, "length")
            pos, st.hunting = i + 1, true
        elseif nested and st.nested_crc + len > st.taken + MAX_PAYLOAD then
            item("bad", i, i + HEADER - 1, "skipped")
            pos, st.hunting = i + 1, true
        elseif #s - i + 1 < HEADER + len then
            pos, need = i, HEADER + len
            break
        else
            st.crc_bytes = st.crc_bytes + len
            if nested then
                st.nested_crc = st.nested_crc + len
            end
            if len > 0 and crc32(s, i + HEADER, i + HEADER + len - 1) ~= le32(s, i + 10)
               or len == 0 and le32(s, i + 10) ~= 0 then
                item("bad", i, i + HEADER + len - 1, "crc")
                pos, st.hunting = i + 1, true
                st.refused_end = math.max(st.refused_end, at + HEADER + len)
            else
                item("frame", i, i + HEADER + len - 1)
                pos = i + HEADER + len
            end
        end
    end
    local rest = s:sub(pos)
    if #rest > 0 and (pos > #st.buf or #st.buf == 0) then
        st.begins = number
    end
    st.base = st.base + pos - 1
    st.buf, st.pending, st.need = rest, #rest, need
    return items
end

-- ---- showing one frame -------------------------------------------------------

local function show_records(tvb, pinfo, tree, payload, span)
    local s = payload:raw()
    local data, raw_size, want_count, want_first = nil, 0, 0, nil
    local ok, err = pcall(function()
        for num, wt, v in fields(s, span[1], span[2]) do
            if num == 4 and wt == 2 then
                data = v
            elseif num == 3 and wt == 0 then
                raw_size = v:tonumber()
            elseif num == 2 and wt == 0 then
                want_count = v:tonumber()
            elseif num == 1 and wt == 0 then
                want_first = v
            end
        end
    end)
    if not ok or not data then
        return
    end
    -- bounded before anything is inflated, as penlink decode does
    if raw_size > MAX_RAW then
        tree:add_proto_expert_info(ef_chunk, "LogChunk raw_size " .. raw_size
                                             .. " is above the 512 KiB a chunk may hold")
        return
    end
    local limit = raw_size > 0 and raw_size or MAX_RAW
    local raw, why = inflate(s:sub(data[1], data[2]), limit)
    if not raw then
        if why == "too large" then
            why = "inflates to more than " .. (raw_size > 0 and "its raw_size, " .. raw_size
                                               or "the 512 KiB limit, " .. MAX_RAW) .. " bytes"
        end
        tree:add_proto_expert_info(ef_chunk, "LogChunk data does not inflate: " .. why)
        return
    end
    if raw_size > 0 and #raw ~= raw_size then
        tree:add_proto_expert_info(ef_chunk, "LogChunk data inflates to " .. #raw
                                             .. " bytes, not its raw_size " .. raw_size)
        return
    end
    local inflated = ByteArray.new(raw, true):tvb("RecordBatch"):range()
    local first_seq, records
    ok, err = pcall(function()
        first_seq, records = decode_batch(inflated:raw())
    end)
    if ok and want_count > 0 and #records ~= want_count then
        ok, err = false, "chunk record count " .. want_count .. " differs from the batch's " .. #records
    elseif ok and want_first and want_first ~= first_seq then
        ok, err = false, "chunk sequence numbers inconsistent: first_seq " .. tostring(want_first)
                         .. ", the batch's " .. tostring(first_seq)
    end
    if not ok then
        tree:add_proto_expert_info(ef_chunk, "RecordBatch malformed: " .. tostring(err))
        return
    end
    local bt = tree:add(inflated, "RecordBatch: " .. #records .. " records from seq "
                                     .. tostring(first_seq))
    bt:add(f.batch_first_seq, inflated, first_seq)
    bt:add(f.batch_count, inflated, #records)
    for _, r in ipairs(records) do
        local text = { tostring(r.seq), iso_time(r.time), KINDS[r.kind] or ("kind_" .. r.kind) }
        for _, fv in ipairs(r.fields) do
            text[#text + 1] = fv[1] .. "=" .. tostring(fv[2])
        end
        local rt = bt:add(f.record, inflated)
        rt:set_text("Record " .. table.concat(text, "  "))
        rt:add(f.rec_seq, inflated, r.seq)
        rt:add(f.rec_time_ms, inflated, r.time)
        rt:add(f.rec_time, inflated, iso_time(r.time))
        rt:add(f.rec_kind, inflated, r.kind)
        for _, fv in ipairs(r.fields) do
            rt:add(rec_field[fv[1]], inflated, fv[2])
        end
    end
end

local function show_frame(it, tvb, pinfo, tree, conv, dir, names)
    local ftvb
    if it.offset then
        ftvb = tvb:range(it.offset, #it.bytes):tvb()
    else
        ftvb = ByteArray.new(it.bytes, true):tvb("Reassembled penlink frame")
    end
    if it.kind == "garbage" then
        local t = tree:add(f.garbage, ftvb:range())
        t:add_proto_expert_info(ef_garbage, #it.bytes .. " bytes that are not a penlink frame")
        names[#names + 1] = "[garbage]"
        return
    end
    local n = #it.bytes
    local len = le32(it.bytes, 7)
    local t = tree:add(penlink, ftvb:range(), "penlink frame")
    t:add(f.direction, dir)
    if it.begins ~= pinfo.number then
        t:add(f.begins_in, it.begins)
    end
    t:add(f.magic, ftvb:range(0, 4))
    t:add(f.version, ftvb:range(4, 1))
    t:add(f.flags, ftvb:range(5, 1))
    t:add_le(f.length, ftvb:range(6, 4))
    local crc_item = t:add_le(f.crc, ftvb:range(10, 4))
    local hc_item = t:add_le(f.hcheck, ftvb:range(14, 2))
    if it.kind == "bad" then
        if it.why == "crc" then
            t:add(f.hcheck_status, "Good")
            t:add(f.crc_status, "Bad")
            crc_item:add_proto_expert_info(ef_crc, "Payload CRC mismatch: frame refused")
        elseif it.why == "header" then
            t:add(f.hcheck_status, "Bad")
            hc_item:add_proto_expert_info(ef_hcheck, "Header check mismatch: frame refused")
        elseif it.why == "version" then
            t:add_proto_expert_info(ef_version)
        elseif it.why == "skipped" then
            t:add(f.hcheck_status, "Good")
            t:add_proto_expert_info(ef_skipped, "Frame inside a refused frame skipped unchecked: "
                                                .. "the resynchronisation budget is spent")
        else
            t:add_proto_expert_info(ef_large)
        end
        t:append_text(" (refused: " .. it.why .. ")")
        names[#names + 1] = "[bad " .. it.why .. "]"
        return
    end
    t:add(f.hcheck_status, "Good")
    t:add(f.crc_status, "Good")
    local payload = ftvb:range(HEADER, n - HEADER)
    -- the Envelope's request id and body, for pairing and the records
    local rid, body, bspan = 0, nil, nil
    local ok = pcall(function()
        for num, wt, v in fields(it.bytes, HEADER + 1, n) do
            if num == 1 and wt == 0 then
                rid = v:tonumber()
            elseif BODIES[num] and wt == 2 then
                body, bspan = num, { v[1] - HEADER, v[2] - HEADER }
            end
        end
    end)
    if not ok then
        t:add_proto_expert_info(ef_envelope)
        names[#names + 1] = "[bad envelope]"
        return
    end
    local name = body and BODIES[body] or "none"
    t:add(f.request_id, rid)
    t:add(f.message, name)
    t:append_text(": " .. name .. " (request " .. rid .. ")")
    names[#names + 1] = name .. " #" .. rid
    -- request / reply pairing (computed on the first pass)
    local key = pinfo.number .. ":" .. (it.offset or it.begins) .. ":" .. n
    if not pinfo.visited then
        requests[conv] = requests[conv] or {}
        if body and REQUESTS[body] then
            requests[conv][rid] = pinfo.number
        elseif body then
            local req = requests[conv][rid]
            pairing[key] = req or false
            if req and not replied[req] then
                replied[req] = pinfo.number
            end
        end
    end
    if body and REQUESTS[body] then
        if replied[pinfo.number] then
            t:add(f.response_in, replied[pinfo.number])
        end
    elseif body then
        local req = pairing[key]
        if req then
            t:add(f.request_in, req)
        elseif not (rid == 0 and body == 25) then
            t:add_proto_expert_info(ef_orphan, "Reply " .. name .. " #" .. rid
                                               .. " without a request in this capture")
        end
    end
    if pref.protobuf and protobuf then
        pinfo.private["pb_msg_type"] = "message,penlink.v1.Envelope"
        pcall(Dissector.call, protobuf, payload:tvb(), pinfo, t)
    end
    if body == 19 then
        show_records(ftvb, pinfo, t, payload:tvb():range(), bspan)
    end
end

-- One packet's bytes of one conversation direction.
local function dissect_bytes(tvb, pinfo, tree, conv, dir, range)
    local number = pinfo.number
    if not pinfo.visited then
        local key = conv .. "/" .. dir
        local st = streams[key]
        if not st then
            st = { buf = "", begins = number, hunting = false, pieces = {}, pending = 0,
                   need = 0, taken = 0, base = 0, refused_end = 0, nested_crc = 0,
                   crc_bytes = 0 }
            streams[key] = st
        end
        found[number] = found[number] or {}
        local items = split(st, range:raw(), number, range:offset())
        for _, it in ipairs(items) do
            table.insert(found[number], it)
        end
    end
    local items = found[number] or {}
    if #items == 0 then
        pinfo.cols.protocol = "penlink"
        pinfo.cols.info = "[penlink: part of a frame that continues in a later packet]"
        return
    end
    local names = {}
    for _, it in ipairs(items) do
        show_frame(it, tvb, pinfo, tree, conv, dir, names)
    end
    pinfo.cols.protocol = "penlink"
    pinfo.cols.info = (dir == "to_pen" and "host->pen " or "pen->host ")
                      .. table.concat(names, ", ")
end

-- ---- USB -----------------------------------------------------------------------

local usb_streams = {} -- conversations known to carry penlink

local function usb_conv()
    local bus, addr, ep = usb_bus_f(), usb_addr_f(), usb_ep_f()
    if not bus or not addr or not ep then
        return nil
    end
    local epv = ep.value
    return "usb:" .. bus.value .. "." .. addr.value, epv, bit32.band(epv, 0x80) ~= 0
end

local function dissect_usb(tvb, pinfo, tree, by_heuristic)
    local xfer = usb_xfer_f()
    if xfer and xfer.value ~= 3 then -- bulk only
        return 0
    end
    local conv, ep, inbound = usb_conv()
    if not conv or tvb:len() == 0 then
        return 0
    end
    local skey = conv .. "." .. ep
    if not usb_streams[skey] then
        if by_heuristic and not tvb:raw():find(MAGIC, 1, true) then
            return 0
        end
        usb_streams[skey] = true
    end
    dissect_bytes(tvb, pinfo, tree, conv, inbound and "to_host" or "to_pen", tvb:range())
    return tvb:len()
end

-- From the usb.product (VID:PID) and usb.bulk (class 0xFF) tables: still
-- only endpoints that have shown a frame's magic, since a vendor class is
-- shared by many devices.
function penlink.dissector(tvb, pinfo, tree)
    return dissect_usb(tvb, pinfo, tree, true)
end

local function heuristic(tvb, pinfo, tree)
    return dissect_usb(tvb, pinfo, tree, true) > 0
end

function penlink.init()
    reset()
    usb_streams = {}
end

-- ---- the penlink stream link type -----------------------------------------------

function penlink_stream.dissector(tvb, pinfo, tree)
    if tvb:len() < 4 or tvb:range(0, 1):uint() ~= 0x70 or tvb:range(1, 1):uint() ~= 1 then
        return 0
    end
    local d = tvb:range(2, 1):uint()
    local iface = iface_f()
    local conv = "stream:" .. (iface and iface.value or 0)
    local t = tree:add(penlink_stream, tvb:range(0, 4), "penlink stream pseudo-header")
    t:add(tvb:range(2, 1), "Direction: " .. (d == 0 and "host to pen" or "pen to host"))
    if tvb:len() > 4 then
        dissect_bytes(tvb, pinfo, tree, conv, d == 0 and "to_pen" or "to_host", tvb:range(4))
    end
    return tvb:len()
end

DissectorTable.get("wtap_encap"):add(wtap_encaps.USER0, penlink_stream)
DissectorTable.get("usb.product"):add(VID_PID, penlink)
DissectorTable.get("usb.bulk"):add(CLASS_VENDOR, penlink)
penlink:register_heuristic("usb.bulk", heuristic)
