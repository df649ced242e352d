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
local ef_envelope = ProtoExpert.new("penlink.envelope.bad", "Payload is not an Envelope",
                                    expert.group.MALFORMED, expert.severity.ERROR)
penlink.experts = { ef_crc, ef_hcheck, ef_version, ef_large, ef_garbage, ef_orphan, ef_chunk,
                    ef_envelope }

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

local function iso_time(ms)
    local n = ms:tonumber()
    local sec = math.floor(n / 1000)
    return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%03dZ", n - sec * 1000)
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
local function split(st, data, number, base_off)
    local s = st.buf .. data
    local start_off = base_off - #st.buf -- offset in this packet's data of s[1]
    local items, pos = {}, 1
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
            pos = i
            break
        end
        local version, len = s:byte(i + 4), le32(s, i + 6)
        local hc = s:byte(i + 14) + s:byte(i + 15) * 256
        if version ~= 1 then
            item("bad", i, i + HEADER - 1, "version")
            pos, st.hunting = i + 1, true
        elseif bit32.band(crc32(s, i, i + 13), 0xFFFF) ~= hc then
            item("bad", i, i + HEADER - 1, "header")
            pos, st.hunting = i + 1, true
        elseif len > MAX_PAYLOAD then
            item("bad", i, i + HEADER - 1, "length")
            pos, st.hunting = i + 1, true
        elseif #s - i + 1 < HEADER + len then
            pos = i
            break
        elseif crc32(s, i + HEADER, i + HEADER + len - 1) ~= le32(s, i + 10) and len > 0 then
            item("bad", i, i + HEADER + len - 1, "crc")
            pos, st.hunting = i + 1, true
        elseif len == 0 and le32(s, i + 10) ~= 0 then
            item("bad", i, i + HEADER - 1, "crc")
            pos, st.hunting = i + 1, true
        else
            item("frame", i, i + HEADER + len - 1)
            pos = i + HEADER + len
        end
    end
    local rest = s:sub(pos)
    if #rest > 0 and (pos > #st.buf or #st.buf == 0) then
        st.begins = number
    end
    st.buf = rest
    return items
end

-- ---- showing one frame -------------------------------------------------------

local function show_records(tvb, pinfo, tree, payload, span)
    local s = payload:raw()
    local data = nil
    local ok, err = pcall(function()
        for num, wt, v in fields(s, span[1], span[2]) do
            if num == 4 and wt == 2 then
                data = v
            end
        end
    end)
    if not ok or not data then
        return
    end
    local z = payload:range(data[1] - 1, data[2] - data[1] + 1)
    local inflated = z:uncompress("RecordBatch")
    if not inflated then
        tree:add_proto_expert_info(ef_chunk, "LogChunk data is not a zlib stream")
        return
    end
    local first_seq, records
    ok, err = pcall(function()
        first_seq, records = decode_batch(inflated:raw())
    end)
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
            st = { buf = "", begins = number, hunting = false }
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
