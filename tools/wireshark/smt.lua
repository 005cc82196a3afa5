-- Wireshark dissector for SMT version 1 (docs/PROTOCOL.md): TLS 1.3 records
-- carried over a Homa-like message transport, on UDP or directly on IP.
--
-- Load it with `tshark -X lua_script:tools/wireshark/smt.lua ...` or copy it to
-- ~/.local/lib/wireshark/plugins/ (docs/WIRESHARK.md). Written from the
-- specification; crates/smt-proto/src/wire/ is the reference where the two differ.
--
-- What it shows:
--   * every field of the common header and of each packet type's body, with
--     expert info for everything the parser (PacketRepr::parse) would reject;
--   * inside DATA payloads, the TLS record boundaries computed from the message
--     layout (section 6): each record's 5-byte header (content type, legacy
--     version, length), its ciphertext and its tag, with the record's sequence
--     number (message_id << 16 | index). Records cannot be decrypted here: use
--     `smt inspect CAPTURE --keylog FILE`;
--   * inside HANDSHAKE packets, the TLS byte stream. Each direction's stream is
--     reassembled here (by Stream Offset) and every TLS record it completes is
--     handed to Wireshark's own TLS dissector, which then decodes ClientHello,
--     ServerHello, alerts, and shows the encrypted handshake records. A retry token
--     a client echoes (section 8.4) is shown after the TLS bytes;
--   * RETRY packets (section 4.11) and the token they carry.
--
-- On tshark/Wireshark 4.0, the TLS record-layer dissector, Dissector.get("tls"), is
-- the one that works: the handshake stream is exactly what TLS would write to a TCP
-- connection (records starting `16 03 01`), not bare handshake messages, so the
-- "tls13-handshake" dissector (QUIC's, for bare handshake messages) does not apply.
-- The "tls" dissector can only wait for more bytes of a record over TCP
-- (pinfo.can_desegment); over UDP a record cut in two by SMT's chunking would be
-- shown as malformed. That is why this file reassembles the stream itself and only
-- ever passes whole records.
--
-- Every length is checked before a field is read: a truncated or malformed packet
-- gives expert info, never a Lua error.

local smt = Proto("smt", "SMT (Secure Message Transport)")

local HEADER_LEN = 24
local VERSION = 1
local RECORD_OVERHEAD = 22 -- 5-byte record header + content type byte + 16-byte tag
local TAG_LEN = 16
local MIN_RECORD_SIZE = 8
local MAX_RECORD_SIZE = 16384
local MAX_RECORDS = 65536
local MAX_ACKS = 32
local MAX_U32 = 4294967295
local MAX_HANDSHAKE_STREAM = 256 * 1024 -- bytes per direction (section 8.3)
local MAX_RETRY_TOKEN = 255 -- bytes (section 4.11)

-- Packet types (section 4).
local DATA, GRANT, RESEND, RPC_UNKNOWN, BUSY = 0x10, 0x11, 0x12, 0x13, 0x14
local NEED_ACK, ACK = 0x17, 0x18
local HANDSHAKE, SESSION_UNKNOWN, CLOSE, RETRY = 0x20, 0x21, 0x22, 0x23

local type_names = {
    [DATA] = "DATA",
    [GRANT] = "GRANT",
    [RESEND] = "RESEND",
    [RPC_UNKNOWN] = "RPC_UNKNOWN",
    [BUSY] = "BUSY",
    [NEED_ACK] = "NEED_ACK",
    [ACK] = "ACK",
    [HANDSHAKE] = "HANDSHAKE",
    [SESSION_UNKNOWN] = "SESSION_UNKNOWN",
    [CLOSE] = "CLOSE",
    [RETRY] = "RETRY",
}

-- Types whose packet length is exactly 24 + this (section 4, "Exact lengths").
-- ACK is exact too, but its length depends on Count.
local exact_body_len = {
    [GRANT] = 8,
    [RESEND] = 12,
    [RPC_UNKNOWN] = 0,
    [BUSY] = 0,
    [NEED_ACK] = 0,
    [SESSION_UNKNOWN] = 0,
    [CLOSE] = 0,
}

-- Types that concern no message: their message ID is 0 (section 3).
local no_message = {
    [ACK] = true,
    [HANDSHAKE] = true,
    [SESSION_UNKNOWN] = true,
    [CLOSE] = true,
    [RETRY] = true,
}

local FLAG_RETRANSMIT, FLAG_FROM_INITIATOR, FLAG_KEY_PHASE, FLAG_BUNDLED = 0x01, 0x02, 0x04, 0x08

local content_types = {
    [20] = "change_cipher_spec",
    [21] = "alert",
    [22] = "handshake",
    [23] = "application_data",
}
local record_versions = { [0x0301] = "TLS 1.0", [0x0303] = "TLS 1.2 (TLS 1.3 legacy_record_version)" }

local hf = {
    -- Common header (section 3).
    src_port = ProtoField.uint16("smt.src_port", "Source Port", base.DEC),
    dst_port = ProtoField.uint16("smt.dst_port", "Destination Port", base.DEC),
    port = ProtoField.uint16("smt.port", "Source or Destination Port", base.DEC),
    version = ProtoField.uint8("smt.version", "Version", base.DEC),
    type = ProtoField.uint8("smt.type", "Type", base.HEX, type_names),
    flags = ProtoField.uint8("smt.flags", "Flags", base.HEX),
    flag_retransmit = ProtoField.bool("smt.flags.retransmit", "RETRANSMIT", 8, nil, FLAG_RETRANSMIT),
    flag_from_initiator =
        ProtoField.bool("smt.flags.from_initiator", "FROM_INITIATOR", 8, nil, FLAG_FROM_INITIATOR),
    flag_key_phase = ProtoField.bool("smt.flags.key_phase", "KEY_PHASE", 8, nil, FLAG_KEY_PHASE),
    flag_bundled = ProtoField.bool("smt.flags.bundled", "BUNDLED", 8, nil, FLAG_BUNDLED),
    flag_reserved = ProtoField.uint8("smt.flags.reserved", "Reserved flag bits", base.HEX, nil, 0xf0),
    reserved = ProtoField.uint8("smt.reserved", "Reserved", base.HEX),
    session_id = ProtoField.uint64("smt.session_id", "Session ID", base.HEX),
    bundle_length = ProtoField.uint16("smt.bundle_length", "Bundle Length", base.DEC),
    message_id = ProtoField.uint64("smt.message_id", "Message ID", base.DEC),
    packet_length = ProtoField.uint32("smt.packet_length", "Packet length", base.DEC),
    bundle_index = ProtoField.uint32("smt.bundle_index", "Packet in datagram", base.DEC),
    gso_segment_size =
        ProtoField.uint32("smt.gso_segment_size", "GSO/GRO segment size", base.DEC),
    undecoded = ProtoField.bytes("smt.undecoded", "Undecoded bytes"),

    -- DATA (section 4.1).
    data_message_length = ProtoField.uint32("smt.data.message_length", "Message Length", base.DEC),
    data_offset = ProtoField.uint32("smt.data.offset", "Offset", base.DEC),
    data_unscheduled = ProtoField.uint32("smt.data.unscheduled", "Unscheduled", base.DEC),
    data_record_size = ProtoField.uint16("smt.data.record_size", "Record Size", base.DEC),
    data_priority = ProtoField.uint8("smt.data.priority", "Priority", base.DEC),
    data_reserved = ProtoField.uint8("smt.data.reserved", "Reserved", base.HEX),
    data_payload = ProtoField.bytes("smt.data.payload", "Payload (wire image bytes)"),
    data_payload_length = ProtoField.uint32("smt.data.payload_length", "Payload length", base.DEC),
    data_end = ProtoField.uint32("smt.data.end", "End offset", base.DEC),
    -- The message layout recovered from (Message Length, Record Size), section 6.3.
    data_records = ProtoField.uint32("smt.data.records", "Records in message", base.DEC),
    data_message_payload_length =
        ProtoField.uint32("smt.data.message_payload_length", "Message payload length", base.DEC),

    -- TLS records inside DATA payloads (sections 5.1 and 6.1).
    record = ProtoField.none("smt.record", "TLS record"),
    record_index = ProtoField.uint32("smt.record.index", "Record index", base.DEC),
    record_sequence = ProtoField.uint64("smt.record.sequence", "Sequence number", base.HEX),
    record_start = ProtoField.uint32("smt.record.start", "Record start in wire image", base.DEC),
    record_end = ProtoField.uint32("smt.record.end", "Record end in wire image", base.DEC),
    record_content_type =
        ProtoField.uint8("smt.record.content_type", "Content Type", base.DEC, content_types),
    record_legacy_version =
        ProtoField.uint16("smt.record.legacy_version", "Legacy Version", base.HEX, record_versions),
    record_length = ProtoField.uint16("smt.record.length", "Length", base.DEC),
    record_header_fragment = ProtoField.bytes("smt.record.header_fragment", "Record header fragment"),
    record_ciphertext = ProtoField.bytes("smt.record.ciphertext", "Encrypted inner plaintext"),
    record_tag = ProtoField.bytes("smt.record.tag", "Authentication tag"),

    -- GRANT (section 4.2).
    grant_offset = ProtoField.uint32("smt.grant.offset", "Offset", base.DEC),
    grant_priority = ProtoField.uint8("smt.grant.priority", "Priority", base.DEC),
    grant_reserved = ProtoField.uint24("smt.grant.reserved", "Reserved", base.HEX),

    -- RESEND (section 4.3).
    resend_offset = ProtoField.uint32("smt.resend.offset", "Offset", base.DEC),
    resend_length = ProtoField.uint32("smt.resend.length", "Length", base.DEC),
    resend_priority = ProtoField.uint8("smt.resend.priority", "Priority", base.DEC),
    resend_reserved = ProtoField.uint24("smt.resend.reserved", "Reserved", base.HEX),
    resend_end = ProtoField.uint32("smt.resend.end", "End offset", base.DEC),

    -- ACK (section 4.7).
    ack_count = ProtoField.uint16("smt.ack.count", "Count", base.DEC),
    ack_reserved = ProtoField.uint16("smt.ack.reserved", "Reserved", base.HEX),
    ack_id_reserved = ProtoField.uint16("smt.ack.id_reserved", "Reserved (upper 16 bits)", base.HEX),
    ack_message_id = ProtoField.uint64("smt.ack.message_id", "Acknowledged Message ID", base.DEC),

    -- HANDSHAKE (section 4.8).
    hs_stream_offset = ProtoField.uint32("smt.handshake.stream_offset", "Stream Offset", base.DEC),
    hs_acknowledged = ProtoField.uint32("smt.handshake.acknowledged", "Acknowledged", base.DEC),
    hs_length = ProtoField.uint16("smt.handshake.length", "Length", base.DEC),
    hs_token_length = ProtoField.uint16("smt.handshake.token_length", "Token Length", base.DEC),
    hs_tls_bytes = ProtoField.bytes("smt.handshake.tls_bytes", "TLS bytes"),
    hs_token = ProtoField.bytes("smt.handshake.token", "Retry token"),
    hs_padding = ProtoField.bytes("smt.handshake.padding", "Padding"),
    hs_padding_length = ProtoField.uint32("smt.handshake.padding_length", "Padding length", base.DEC),
    hs_stream_end = ProtoField.uint32("smt.handshake.stream_end", "Stream end offset", base.DEC),
    hs_retransmission =
        ProtoField.bool("smt.handshake.retransmission", "Retransmission (bytes seen before)"),
    hs_records = ProtoField.uint32("smt.handshake.records", "TLS records completed here", base.DEC),

    -- RETRY (section 4.11).
    retry_token = ProtoField.bytes("smt.retry.token", "Retry token"),
    retry_token_length = ProtoField.uint32("smt.retry.token_length", "Token length", base.DEC),
}

local field_list = {}
for _, field in pairs(hf) do
    field_list[#field_list + 1] = field
end
smt.fields = field_list

local function new_expert(abbrev, text, group, severity)
    return ProtoExpert.new("smt.expert." .. abbrev, text, group, severity)
end

local ef = {
    too_short = new_expert("too_short", "Packet too short",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_version = new_expert("bad_version", "Unsupported version (receivers drop it)",
        expert.group.MALFORMED, expert.severity.ERROR),
    unknown_type = new_expert("unknown_type", "Unknown packet type (receivers drop it)",
        expert.group.MALFORMED, expert.severity.ERROR),
    reserved_flags = new_expert("reserved_flags", "Reserved flag bits set (receivers drop it)",
        expert.group.MALFORMED, expert.severity.ERROR),
    reserved_nonzero = new_expert("reserved_nonzero", "Reserved field is not zero (receivers drop it)",
        expert.group.MALFORMED, expert.severity.ERROR),
    message_id_too_large = new_expert("message_id_too_large", "Message ID exceeds 48 bits",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_length = new_expert("bad_length", "Lengths do not fit (receivers drop it)",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_field = new_expert("bad_field", "Invalid field value (receivers drop it)",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_bundle = new_expert("bad_bundle", "Invalid Bundle Length (receivers drop the rest of the datagram)",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_layout = new_expert("bad_layout",
        "Message Length and Record Size describe no valid message (section 6.3)",
        expert.group.MALFORMED, expert.severity.ERROR),
    record_header = new_expert("record_header", "TLS record header does not match the message layout",
        expert.group.MALFORMED, expert.severity.ERROR),
    handshake_bundled = new_expert("handshake_bundled",
        "HANDSHAKE packet shares its datagram (receivers drop it)",
        expert.group.PROTOCOL, expert.severity.WARN),
    retry_bundled = new_expert("retry_bundled",
        "RETRY packet shares its datagram (receivers drop it)",
        expert.group.PROTOCOL, expert.severity.WARN),
    flag_misuse = new_expert("flag_misuse", "Flag not allowed on this packet type",
        expert.group.PROTOCOL, expert.severity.WARN),
    message_id_nonzero = new_expert("message_id_nonzero",
        "Message ID should be 0 on this packet type (receivers ignore it)",
        expert.group.PROTOCOL, expert.severity.NOTE),
    gso_batch = new_expert("gso_batch", "Several SMT datagrams captured as one (GSO/GRO)",
        expert.group.SEQUENCE, expert.severity.NOTE),
    capture_truncated = new_expert("capture_truncated",
        "Capture truncated (snapshot length): not all bytes were captured",
        expert.group.MALFORMED, expert.severity.WARN),
}
local expert_list = {}
for _, e in pairs(ef) do
    expert_list[#expert_list + 1] = e
end
smt.experts = expert_list

smt.prefs.udp_port = Pref.uint("UDP port", 4433,
    "UDP port to decode as SMT (SMT has no assigned port; 0 disables)")
smt.prefs.ip_proto = Pref.uint("IP protocol number", 253,
    "IP protocol / next-header number of native IP mode (default 253; 0 disables)")
smt.prefs.tls = Pref.bool("Decode handshake TLS records", true,
    "Reassemble each HANDSHAKE stream and pass its TLS records to the TLS dissector")

local tls_dissector = Dissector.get("tls")

-- Handshake stream reassembly. `streams` holds per-direction state while packets are
-- dissected the first time (in capture order); `per_packet` remembers what each
-- packet completed, so that later passes (clicking a packet in Wireshark) show the
-- same thing without touching the stream state again.
local streams = {}
local per_packet = {}

function smt.init()
    streams = {}
    per_packet = {}
end

-- What `tvb` holds of [off, off + len): the captured part, possibly less than asked
-- for. Returns nil when nothing of it was captured.
local function range(tvb, off, len)
    local cap = tvb:len()
    if len <= 0 or off >= cap then
        return nil
    end
    if off + len > cap then
        len = cap - off
    end
    return tvb(off, len)
end

-- Whether all of [off, off + len) was captured.
local function have(tvb, off, len)
    return off + len <= tvb:len()
end

-- Adds `field` over `r` (which may be nil for bytes not captured) with `value`.
local function add_value(tree, field, r, value)
    if r then
        return tree:add(field, r, value)
    end
    return tree:add(field, value)
end

-- Whether the one-bit mask `bit_value` is set in the byte `flags`. Plain arithmetic:
-- the bit libraries differ between the Lua versions Wireshark builds use.
local function flag_set(flags, bit_value)
    return math.floor(flags / bit_value) % 2 == 1
end

-- The message layout of section 6.3, or nil if (W, R) describe no valid message.
local function message_layout(W, R)
    if R < MIN_RECORD_SIZE or R > MAX_RECORD_SIZE then
        return nil
    end
    local stride = R + RECORD_OVERHEAD
    local N = math.floor((W + stride - 1) / stride)
    local C = W - RECORD_OVERHEAD * N
    local P = C - 8
    if N < 1 or C < 0 or P < 0 or N > MAX_RECORDS then
        return nil
    end
    -- Recompute W from the payload length (section 6.1): a "last record" without
    -- content, for example, gives a different value.
    local n2 = math.floor((P + 8 + R - 1) / R)
    if P + 8 + RECORD_OVERHEAD * n2 ~= W then
        return nil
    end
    return { W = W, R = R, N = N, C = C, P = P, stride = stride }
end

local function content_len(layout, k)
    if k < layout.N - 1 then
        return layout.R
    end
    return layout.C - (layout.N - 1) * layout.R
end

-- Shows the records (or parts of records) that DATA payload bytes [off, off + len)
-- of the wire image carry; `pstart` is where that payload starts in `tvb`.
local function dissect_records(tvb, tree, pstart, off, len, layout, message_id)
    local first = math.floor(off / layout.stride)
    local last = math.floor((off + len - 1) / layout.stride)
    if last > layout.N - 1 then
        last = layout.N - 1
    end
    for k = first, last do
        local rs = k * layout.stride
        local clen = content_len(layout, k)
        local re = rs + clen + RECORD_OVERHEAD
        local a = math.max(rs, off)
        local b = math.min(re, off + len)
        if a < b then
            local r = range(tvb, pstart + (a - off), b - a)
            if r == nil then
                return
            end
            local whole = (a == rs and b == re)
            local label = string.format("TLS record %d, wire image [%d, %d)%s", k, rs, re,
                whole and "" or string.format(", bytes [%d, %d) here", a, b))
            local rt = tree:add(hf.record, r)
            rt:set_text(label)
            rt:add(hf.record_index, r, k):set_generated()
            local seq = message_id:lshift(16):bor(UInt64(k))
            rt:add(hf.record_sequence, r, seq):set_generated()
            rt:add(hf.record_start, r, rs):set_generated()
            rt:add(hf.record_end, r, re):set_generated()
            -- Header [rs, rs + 5).
            local hs, he = math.max(rs, a), math.min(rs + 5, b)
            if hs < he then
                local at = pstart + (hs - off)
                if hs == rs and he == rs + 5 and have(tvb, at, 5) then
                    local ct = tvb(at, 1):uint()
                    local ver = tvb(at + 1, 2):uint()
                    local rlen = tvb(at + 3, 2):uint()
                    local ct_item = rt:add(hf.record_content_type, tvb(at, 1))
                    local ver_item = rt:add(hf.record_legacy_version, tvb(at + 1, 2))
                    local len_item = rt:add(hf.record_length, tvb(at + 3, 2))
                    if ct ~= 23 then
                        ct_item:add_proto_expert_info(ef.record_header,
                            "Outer content type of an SMT record must be 23 (application_data)")
                    end
                    if ver ~= 0x0303 then
                        ver_item:add_proto_expert_info(ef.record_header,
                            "Legacy version of an SMT record must be 0x0303")
                    end
                    if rlen ~= clen + RECORD_OVERHEAD - 5 then
                        len_item:add_proto_expert_info(ef.record_header, string.format(
                            "Record length %d, but the layout puts %d bytes after this header",
                            rlen, clen + RECORD_OVERHEAD - 5))
                    end
                else
                    local fr = range(tvb, at, he - hs)
                    if fr then
                        rt:add(hf.record_header_fragment, fr)
                    end
                end
            end
            -- Encrypted inner plaintext [rs + 5, re - 16).
            local cs, ce = math.max(rs + 5, a), math.min(re - TAG_LEN, b)
            if cs < ce then
                local cr = range(tvb, pstart + (cs - off), ce - cs)
                if cr then
                    rt:add(hf.record_ciphertext, cr)
                end
            end
            -- Tag [re - 16, re).
            local ts, te = math.max(re - TAG_LEN, a), math.min(re, b)
            if ts < te then
                local tr = range(tvb, pstart + (ts - off), te - ts)
                if tr then
                    rt:add(hf.record_tag, tr)
                end
            end
        end
    end
end

local function dissect_data(tvb, pinfo, tree, start, plen, message_id, flags)
    local b = start + HEADER_LEN
    if plen < HEADER_LEN + 16 then
        tree:add_proto_expert_info(ef.too_short, string.format(
            "DATA needs at least %d bytes (header and body), has %d", HEADER_LEN + 16, plen))
        return "DATA (too short)"
    end
    if not have(tvb, b, 16) then
        return "DATA (body not captured)"
    end
    local W = tvb(b, 4):uint()
    local off = tvb(b + 4, 4):uint()
    local unsched = tvb(b + 8, 4):uint()
    local R = tvb(b + 12, 2):uint()
    local prio = tvb(b + 14, 1):uint()
    local reserved = tvb(b + 15, 1):uint()
    local len = plen - HEADER_LEN - 16

    local w_item = tree:add(hf.data_message_length, tvb(b, 4))
    local off_item = tree:add(hf.data_offset, tvb(b + 4, 4))
    local un_item = tree:add(hf.data_unscheduled, tvb(b + 8, 4))
    local r_item = tree:add(hf.data_record_size, tvb(b + 12, 2))
    tree:add(hf.data_priority, tvb(b + 14, 1))
    local res_item = tree:add(hf.data_reserved, tvb(b + 15, 1))
    tree:add(hf.data_payload_length, tvb(b, 16), len):set_generated()
    tree:add(hf.data_end, tvb(b + 4, 4), off + len):set_generated()

    if reserved ~= 0 then
        res_item:add_proto_expert_info(ef.reserved_nonzero)
    end
    local r_ok = R >= MIN_RECORD_SIZE and R <= MAX_RECORD_SIZE
    if not r_ok then
        r_item:add_proto_expert_info(ef.bad_field, string.format(
            "Record Size %d is outside %d..%d", R, MIN_RECORD_SIZE, MAX_RECORD_SIZE))
    end
    if len < 1 then
        tree:add_proto_expert_info(ef.bad_length, "DATA payload is empty (at least 1 byte required)")
    end
    if off + len > W then
        off_item:add_proto_expert_info(ef.bad_length, string.format(
            "Offset %d + payload length %d exceeds Message Length %d", off, len, W))
    end
    if unsched > W then
        un_item:add_proto_expert_info(ef.bad_field, string.format(
            "Unscheduled %d exceeds Message Length %d", unsched, W))
    end
    local layout = message_layout(W, R)
    if layout then
        tree:add(hf.data_records, tvb(b, 4), layout.N):set_generated()
        tree:add(hf.data_message_payload_length, tvb(b, 4), layout.P):set_generated()
    elseif r_ok then
        w_item:add_proto_expert_info(ef.bad_layout, string.format(
            "Message Length %d with Record Size %d describes no valid message", W, R))
    end

    if len > 0 then
        local pr = range(tvb, b + 16, len)
        if pr then
            local payload_item = tree:add(hf.data_payload, pr)
            if layout and off + len <= W then
                dissect_records(tvb, payload_item, b + 16, off, len, layout, message_id)
            end
        end
    end

    local text = string.format("DATA id=%s [%d,%d) of %d", tostring(message_id), off, off + len, W)
    if unsched < W then
        text = text .. string.format(" unsched=%d", unsched)
    end
    if flag_set(flags, FLAG_RETRANSMIT) then
        text = text .. " RTX"
    end
    return text
end

local function dissect_grant(tvb, tree, b, message_id)
    local off = tvb(b, 4):uint()
    local prio = tvb(b + 4, 1):uint()
    tree:add(hf.grant_offset, tvb(b, 4))
    tree:add(hf.grant_priority, tvb(b + 4, 1))
    local res = tree:add(hf.grant_reserved, tvb(b + 5, 3))
    if tvb(b + 5, 3):uint() ~= 0 then
        res:add_proto_expert_info(ef.reserved_nonzero)
    end
    return string.format("GRANT id=%s off=%d prio=%d", tostring(message_id), off, prio)
end

local function dissect_resend(tvb, tree, b, message_id)
    local off = tvb(b, 4):uint()
    local len = tvb(b + 4, 4):uint()
    local prio = tvb(b + 8, 1):uint()
    tree:add(hf.resend_offset, tvb(b, 4))
    local len_item = tree:add(hf.resend_length, tvb(b + 4, 4))
    tree:add(hf.resend_priority, tvb(b + 8, 1))
    local res = tree:add(hf.resend_reserved, tvb(b + 9, 3))
    if off + len <= MAX_U32 then
        tree:add(hf.resend_end, tvb(b, 8), off + len):set_generated()
    end
    if tvb(b + 9, 3):uint() ~= 0 then
        res:add_proto_expert_info(ef.reserved_nonzero)
    end
    if len == 0 then
        len_item:add_proto_expert_info(ef.bad_field, "RESEND Length must not be 0")
    elseif off + len > MAX_U32 then
        len_item:add_proto_expert_info(ef.bad_length, string.format(
            "Offset %d + Length %d exceeds 2^32 - 1", off, len))
    end
    return string.format("RESEND id=%s [%d,%d) prio=%d", tostring(message_id), off, off + len, prio)
end

local function dissect_ack(tvb, tree, start, plen)
    local b = start + HEADER_LEN
    if plen < HEADER_LEN + 4 then
        tree:add_proto_expert_info(ef.too_short, string.format(
            "ACK needs at least %d bytes, has %d", HEADER_LEN + 4, plen))
        return "ACK (too short)"
    end
    if not have(tvb, b, 4) then
        return "ACK (body not captured)"
    end
    local count = tvb(b, 2):uint()
    local count_item = tree:add(hf.ack_count, tvb(b, 2))
    local res = tree:add(hf.ack_reserved, tvb(b + 2, 2))
    if tvb(b + 2, 2):uint() ~= 0 then
        res:add_proto_expert_info(ef.reserved_nonzero)
    end
    if count > MAX_ACKS then
        count_item:add_proto_expert_info(ef.bad_field, string.format(
            "Count %d exceeds %d", count, MAX_ACKS))
    end
    local needed = HEADER_LEN + 4 + 8 * count
    if plen ~= needed then
        count_item:add_proto_expert_info(ef.bad_length, string.format(
            "Count %d needs a packet of exactly %d bytes, this one has %d", count, needed, plen))
    end
    local ids = {}
    local room = math.floor((plen - HEADER_LEN - 4) / 8)
    for i = 0, math.min(count, room) - 1 do
        local at = b + 4 + 8 * i
        if not have(tvb, at, 8) then
            break
        end
        local id_res = tvb(at, 2):uint()
        local id_item = tree:add(hf.ack_message_id, tvb(at + 2, 6))
        local r = id_item:add(hf.ack_id_reserved, tvb(at, 2))
        if id_res ~= 0 then
            r:add_proto_expert_info(ef.message_id_too_large,
                "The upper 16 bits of an acknowledged ID must be 0")
        end
        if #ids < 8 then
            ids[#ids + 1] = tostring(tvb(at + 2, 6):uint64())
        elseif #ids == 8 then
            ids[#ids + 1] = "..."
        end
    end
    return string.format("ACK ids=[%s]", table.concat(ids, ","))
end

-- Feeds one HANDSHAKE chunk into its direction's stream; returns the bytes of the TLS
-- records this chunk completes (a ByteArray, possibly empty) and whether the chunk
-- brought nothing new.
local function reassemble(key, soff, chunk)
    local s = streams[key]
    if s == nil then
        -- `data` holds the stream's last bytes before `contig`: the start of a record
        -- not yet complete. `pending` holds chunks that arrived beyond `contig`.
        s = { contig = 0, data = ByteArray.new(), pending = {} }
        streams[key] = s
    end
    local clen = chunk:len()
    local out = ByteArray.new()
    if soff + clen <= s.contig then
        return out, true
    end
    if soff + clen > MAX_HANDSHAKE_STREAM then
        -- Receivers fail such a handshake (section 8.3); keeping it would only let a
        -- forged offset make this dissector hold arbitrary amounts of data.
        return out, false
    end
    if soff > s.contig then
        local old = s.pending[soff]
        if old == nil or old:len() < clen then
            s.pending[soff] = chunk
        end
        return out, false
    end
    s.data:append(chunk:subset(s.contig - soff, soff + clen - s.contig))
    s.contig = soff + clen
    -- Chunks that arrived early and now touch the contiguous part.
    local merged = true
    while merged do
        merged = false
        for p_off, p_chunk in pairs(s.pending) do
            local p_end = p_off + p_chunk:len()
            if p_off <= s.contig then
                if p_end > s.contig then
                    s.data:append(p_chunk:subset(s.contig - p_off, p_end - s.contig))
                    s.contig = p_end
                end
                s.pending[p_off] = nil
                merged = true
                break
            end
        end
    end
    -- Cut off every whole record: 5-byte header with a 16-bit length at bytes 3-4.
    local used = 0
    local total = s.data:len()
    while total - used >= 5 do
        local rlen = s.data:get_index(used + 3) * 256 + s.data:get_index(used + 4)
        if total - used < 5 + rlen then
            break
        end
        used = used + 5 + rlen
    end
    if used > 0 then
        out = s.data:subset(0, used)
        if used < total then
            s.data = s.data:subset(used, total - used)
        else
            s.data = ByteArray.new()
        end
    end
    return out, false
end

local function dissect_handshake(tvb, pinfo, tree, root, start, plen, session_hex, flags, tls_infos)
    local b = start + HEADER_LEN
    if plen < HEADER_LEN + 12 then
        tree:add_proto_expert_info(ef.too_short, string.format(
            "HANDSHAKE needs at least %d bytes, has %d", HEADER_LEN + 12, plen))
        return "HANDSHAKE (too short)"
    end
    if not have(tvb, b, 12) then
        return "HANDSHAKE (body not captured)"
    end
    local soff = tvb(b, 4):uint()
    local acked = tvb(b + 4, 4):uint()
    local len = tvb(b + 8, 2):uint()
    local tlen = tvb(b + 10, 2):uint()
    tree:add(hf.hs_stream_offset, tvb(b, 4))
    tree:add(hf.hs_acknowledged, tvb(b + 4, 4))
    local len_item = tree:add(hf.hs_length, tvb(b + 8, 2))
    local tlen_item = tree:add(hf.hs_token_length, tvb(b + 10, 2))
    -- Body bytes 10-11 were a reserved zero field in earlier drafts; they are the
    -- Token Length now, and any value is valid if the token fits (section 4.8).
    local fits = HEADER_LEN + 12 + len + tlen <= plen
    if HEADER_LEN + 12 + len > plen then
        len_item:add_proto_expert_info(ef.bad_length, string.format(
            "Length %d does not fit: the packet has only %d bytes after the HANDSHAKE body header",
            len, plen - HEADER_LEN - 12))
    elseif not fits then
        tlen_item:add_proto_expert_info(ef.bad_length, string.format(
            "Token Length %d does not fit: the packet has only %d bytes after the TLS bytes",
            tlen, plen - HEADER_LEN - 12 - len))
    end
    if soff + len > MAX_U32 then
        len_item:add_proto_expert_info(ef.bad_length, string.format(
            "Stream Offset %d + Length %d exceeds 2^32 - 1", soff, len))
    end
    tree:add(hf.hs_stream_end, tvb(b, 4), soff + len):set_generated()
    local pad = plen - HEADER_LEN - 12 - len - tlen
    local text = string.format("HANDSHAKE [%d,%d) ack=%d", soff, soff + len, acked)
    if len > 0 then
        local dr = range(tvb, b + 12, len)
        if dr then
            tree:add(hf.hs_tls_bytes, dr)
        end
    else
        text = text .. " (pure ack)"
    end
    if tlen > 0 then
        local tr = range(tvb, b + 12 + len, tlen)
        if tr then
            tree:add(hf.hs_token, tr)
        end
        text = text .. string.format(" token=%d", tlen)
    end
    if pad > 0 then
        local pr = range(tvb, b + 12 + len + tlen, pad)
        if pr then
            tree:add(hf.hs_padding, pr)
        end
        tree:add(hf.hs_padding_length, tvb(b + 8, 4), pad):set_generated()
        text = text .. string.format(" pad=%d", pad)
    end

    -- Hand whole TLS records to the TLS dissector (see the top of this file).
    if smt.prefs.tls and tls_dissector and len > 0 and fits and have(tvb, b + 12, len) then
        local slot = string.format("%d:%d", pinfo.number, start)
        local result = per_packet[slot]
        if result == nil and not pinfo.visited then
            local key = string.format("%s|%s|%d|%s", session_hex, tostring(pinfo.src),
                tvb(start, 2):uint(), flag_set(flags, FLAG_FROM_INITIATOR) and "c" or "s")
            local records, old = reassemble(key, soff, tvb(b + 12, len):bytes())
            result = { records = records, old = old }
            per_packet[slot] = result
        end
        if result then
            if result.old then
                tree:add(hf.hs_retransmission, tvb(b + 12, len), true):set_generated()
                text = text .. " (retransmission)"
            end
            local n = result.records:len()
            if n > 0 then
                local rtvb = result.records:tvb("Reassembled TLS records")
                local count, at = 0, 0
                while at + 5 <= n do
                    count = count + 1
                    at = at + 5 + result.records:get_index(at + 3) * 256
                        + result.records:get_index(at + 4)
                end
                tree:add(hf.hs_records, tvb(b + 12, len), count):set_generated()
                -- The TLS dissector rewrites the Info column; keep what it says about
                -- these records and put it after our own summary.
                pinfo.cols.info = ""
                local ok = pcall(Dissector.call, tls_dissector, rtvb, pinfo, root)
                local said = tostring(pinfo.cols.info)
                if ok and said ~= "" then
                    tls_infos[#tls_infos + 1] = said
                end
            end
        end
    end
    return text
end

-- RETRY (section 4.11): the whole body is the token, 1 to 255 bytes.
local function dissect_retry(tvb, tree, start, plen)
    local b = start + HEADER_LEN
    local tlen = plen - HEADER_LEN
    local tr = range(tvb, b, tlen)
    add_value(tree, hf.retry_token_length, tr, tlen):set_generated()
    if tlen < 1 then
        tree:add_proto_expert_info(ef.too_short,
            "RETRY carries no token (at least 1 byte required)")
        return "RETRY (no token)"
    end
    local item = tr and tree:add(hf.retry_token, tr) or tree
    if tlen > MAX_RETRY_TOKEN then
        item:add_proto_expert_info(ef.bad_length, string.format(
            "RETRY token of %d bytes exceeds %d", tlen, MAX_RETRY_TOKEN))
    end
    return string.format("RETRY token=%d", tlen)
end

-- Dissects the packet at [start, start + plen) of the datagram; returns its Info text.
-- Returns the Info text and the packet's tree.
local function dissect_packet(tvb, pinfo, root, start, plen, index, in_bundle, tls_infos)
    local whole = range(tvb, start, plen)
    local tree = whole and root:add(smt, whole) or root:add(smt)
    add_value(tree, hf.packet_length, whole, plen):set_generated()
    if in_bundle then
        add_value(tree, hf.bundle_index, whole, index):set_generated()
    end
    if plen < HEADER_LEN then
        tree:add_proto_expert_info(ef.too_short, string.format(
            "Packet has %d bytes; the common header alone is %d", plen, HEADER_LEN))
    end
    if plen < HEADER_LEN or not have(tvb, start, HEADER_LEN) then
        local r = range(tvb, start, plen)
        if r then
            tree:add(hf.undecoded, r)
        end
        if plen < HEADER_LEN then
            return string.format("SMT too short (%d bytes)", plen), tree
        end
        return "SMT (header not captured)", tree
    end

    local h = start
    local version = tvb(h + 4, 1):uint()
    local ptype = tvb(h + 5, 1):uint()
    local flags = tvb(h + 6, 1):uint()
    local reserved = tvb(h + 7, 1):uint()
    local bundle_len = tvb(h + 16, 2):uint()
    local message_id = tvb(h + 18, 6):uint64()
    local session_hex = tostring(tvb(h + 8, 8):uint64():tohex())
    local name = type_names[ptype]

    tree:add(hf.src_port, tvb(h, 2))
    tree:add(hf.dst_port, tvb(h + 2, 2))
    tree:add(hf.port, tvb(h, 2)):set_hidden()
    tree:add(hf.port, tvb(h + 2, 2)):set_hidden()
    local ver_item = tree:add(hf.version, tvb(h + 4, 1))
    local type_item = tree:add(hf.type, tvb(h + 5, 1))
    local flags_item = tree:add(hf.flags, tvb(h + 6, 1))
    flags_item:add(hf.flag_retransmit, tvb(h + 6, 1))
    flags_item:add(hf.flag_from_initiator, tvb(h + 6, 1))
    flags_item:add(hf.flag_key_phase, tvb(h + 6, 1))
    flags_item:add(hf.flag_bundled, tvb(h + 6, 1))
    local fres = flags_item:add(hf.flag_reserved, tvb(h + 6, 1))
    local res_item = tree:add(hf.reserved, tvb(h + 7, 1))
    tree:add(hf.session_id, tvb(h + 8, 8))
    local bl_item = tree:add(hf.bundle_length, tvb(h + 16, 2))
    local id_item = tree:add(hf.message_id, tvb(h + 18, 6))

    tree:append_text(string.format(", %s, Session 0x%s, Message %s", name or
        string.format("type 0x%02x", ptype), session_hex, tostring(message_id)))

    if flags >= 0x10 then -- any of the reserved bits 0x10-0x80
        fres:add_proto_expert_info(ef.reserved_flags)
    end
    if reserved ~= 0 then
        res_item:add_proto_expert_info(ef.reserved_nonzero)
    end
    if not flag_set(flags, FLAG_BUNDLED) and bundle_len ~= 0 then
        bl_item:add_proto_expert_info(ef.message_id_too_large,
            "Bundle Length must be 0 without BUNDLED: the Message ID field exceeds 48 bits")
    end
    if ptype ~= DATA and flag_set(flags, FLAG_RETRANSMIT) then
        flags_item:add_proto_expert_info(ef.flag_misuse, "RETRANSMIT is only for DATA")
    end
    if ptype ~= DATA and flag_set(flags, FLAG_KEY_PHASE) then
        flags_item:add_proto_expert_info(ef.flag_misuse, "KEY_PHASE is only for DATA")
    end
    if ptype == RETRY and flag_set(flags, FLAG_FROM_INITIATOR) then
        flags_item:add_proto_expert_info(ef.flag_misuse,
            "FROM_INITIATOR must be clear on RETRY: only servers send it (clients ignore this one)")
    end
    if no_message[ptype] and message_id:tonumber() ~= 0 then
        id_item:add_proto_expert_info(ef.message_id_nonzero)
    end

    local b = h + HEADER_LEN
    local text
    if version ~= VERSION then
        ver_item:add_proto_expert_info(ef.bad_version, string.format(
            "Version %d (only %d is defined); the body is not decoded", version, VERSION))
        local r = range(tvb, b, plen - HEADER_LEN)
        if r then
            tree:add(hf.undecoded, r)
        end
        return string.format("SMT version %d (unsupported)", version), tree
    end
    if name == nil then
        type_item:add_proto_expert_info(ef.unknown_type, string.format(
            "Unknown packet type 0x%02x%s", ptype, ptype == 0x15 and " (Homa's CUTOFFS)" or ""))
        local r = range(tvb, b, plen - HEADER_LEN)
        if r then
            tree:add(hf.undecoded, r)
        end
        return string.format("SMT unknown type 0x%02x", ptype), tree
    end

    local exact = exact_body_len[ptype]
    if exact ~= nil then
        if plen ~= HEADER_LEN + exact then
            local e = plen < HEADER_LEN + exact and ef.too_short or ef.bad_length
            type_item:add_proto_expert_info(e, string.format(
                "%s packets are exactly %d bytes, this one has %d", name, HEADER_LEN + exact, plen))
        end
        if plen < HEADER_LEN + exact then
            return string.format("%s id=%s (too short)", name, tostring(message_id)), tree
        end
        if not have(tvb, b, exact) then
            return string.format("%s id=%s (body not captured)", name, tostring(message_id)), tree
        end
        if plen > HEADER_LEN + exact then
            local r = range(tvb, b + exact, plen - HEADER_LEN - exact)
            if r then
                tree:add(hf.undecoded, r)
            end
        end
    end

    -- The body's fields go in a subtree of their own: several names (Offset,
    -- Priority, Reserved) exist in the header or in more than one body.
    local body_tree = tree
    local body = range(tvb, b, plen - HEADER_LEN)
    if body and exact ~= 0 then
        body_tree = tree:add(body, name .. " body")
    end

    if ptype == DATA then
        text = dissect_data(tvb, pinfo, body_tree, h, plen, message_id, flags)
    elseif ptype == GRANT then
        text = dissect_grant(tvb, body_tree, b, message_id)
    elseif ptype == RESEND then
        text = dissect_resend(tvb, body_tree, b, message_id)
    elseif ptype == ACK then
        text = dissect_ack(tvb, body_tree, h, plen)
    elseif ptype == HANDSHAKE then
        if in_bundle then
            type_item:add_proto_expert_info(ef.handshake_bundled)
        end
        text = dissect_handshake(tvb, pinfo, body_tree, root, h, plen, session_hex, flags, tls_infos)
    elseif ptype == RETRY then
        if in_bundle then
            type_item:add_proto_expert_info(ef.retry_bundled)
        end
        text = dissect_retry(tvb, body_tree, h, plen)
    elseif no_message[ptype] then
        text = name
    else
        text = string.format("%s id=%s", name, tostring(message_id))
    end
    if flag_set(flags, FLAG_FROM_INITIATOR) then
        text = text .. " INIT"
    end
    if flag_set(flags, FLAG_KEY_PHASE) then
        text = text .. " KP"
    end
    return text, tree
end

-- Whether the header at `at` looks like an SMT header of session `session`: used
-- only to recognise GSO/GRO batches, where a false match would need 12 bytes of
-- ciphertext to equal the version, reserved byte and session ID by chance.
local function header_at(tvb, at, session)
    return have(tvb, at, HEADER_LEN) and tvb(at + 4, 1):uint() == VERSION
        and type_names[tvb(at + 5, 1):uint()] ~= nil and tvb(at + 7, 1):uint() == 0
        and tvb(at + 8, 8):raw() == session
end

-- A datagram captured before UDP segmentation (GSO, with the NIC or loopback doing
-- the segmentation) or after receive coalescing (GRO) holds several SMT datagrams
-- of one segment size back to back, without BUNDLED. Returns that size, or nil.
local function gso_segment_size(tvb, total)
    local captured = tvb:len()
    if total ~= captured or total < 2 * (HEADER_LEN + 17) or not have(tvb, 0, HEADER_LEN)
            or flag_set(tvb(6, 1):uint(), FLAG_BUNDLED) or tvb(5, 1):uint() ~= DATA then
        return nil
    end
    local session = tvb(8, 8):raw()
    -- The second segment's session ID, searched as a plain string (fast, in C).
    local found = string.find(tvb:raw(0, captured), session, HEADER_LEN + 17 + 8 + 1, true)
    if found == nil then
        return nil
    end
    local size = found - 1 - 8
    if not header_at(tvb, size, session) then
        return nil
    end
    local at = 2 * size
    while at < total do
        if not header_at(tvb, at, session) then
            return nil
        end
        at = at + size
    end
    return size
end

-- Dissects one datagram at [dstart, dstart + dlen): one packet, or a bundle.
-- Returns the tree of its first packet.
local function dissect_datagram(tvb, pinfo, root, dstart, dlen, infos, tls_infos)
    local total = dstart + dlen
    local start = dstart
    local index = 1
    local bundled_before = false
    local first_tree = nil
    while start < total do
        local rest = total - start
        local plen = rest
        local bad_bundle = nil
        local next_start = total
        if rest >= HEADER_LEN and have(tvb, start, HEADER_LEN)
                and flag_set(tvb(start + 6, 1):uint(), FLAG_BUNDLED) then
            local bl = tvb(start + 16, 2):uint()
            if bl < HEADER_LEN or bl >= rest then
                bad_bundle = bl
            else
                plen = bl
                next_start = start + bl
            end
        end
        local in_bundle = bundled_before or next_start < total
        local info, tree =
            dissect_packet(tvb, pinfo, root, start, plen, index, in_bundle, tls_infos)
        if bad_bundle ~= nil then
            -- A receiver drops this packet and the rest of the datagram (section 3.1),
            -- so the rest is shown as part of this packet.
            tree:add_proto_expert_info(ef.bad_bundle, string.format(
                "Bundle Length %d must be at least %d and less than the %d bytes left in the datagram",
                bad_bundle, HEADER_LEN, rest))
            info = info .. " (bad bundle length)"
        end
        infos[#infos + 1] = info
        first_tree = first_tree or tree
        bundled_before = true
        start = next_start
        index = index + 1
    end
    return first_tree
end

function smt.dissector(tvb, pinfo, root)
    local total = tvb:reported_len()
    if total == 0 then
        return 0
    end
    local captured = tvb:len()
    local infos = {}
    local tls_infos = {}
    local first_tree = nil
    local segment = gso_segment_size(tvb, total)
    if segment then
        local at = 0
        while at < total do
            local len = math.min(segment, total - at)
            local t = dissect_datagram(tvb, pinfo, root, at, len, infos, tls_infos)
            t:add(hf.gso_segment_size, tvb(at, len), segment):set_generated()
            if at == 0 then
                t:add_proto_expert_info(ef.gso_batch, string.format(
                    "%d SMT datagrams of %d bytes captured as one (GSO/GRO)",
                    math.ceil(total / segment), segment))
            end
            first_tree = first_tree or t
            at = at + segment
        end
    else
        first_tree = dissect_datagram(tvb, pinfo, root, 0, total, infos, tls_infos)
    end
    if captured < total and first_tree then
        first_tree:add_proto_expert_info(ef.capture_truncated, string.format(
            "%d of the datagram's %d bytes were captured", captured, total))
    end
    -- The TLS dissector fences the columns it wrote; our summary replaces them.
    pinfo.cols.protocol:clear_fence()
    pinfo.cols.info:clear_fence()
    pinfo.cols.protocol = "SMT"
    local text = table.concat(infos, "; ")
    if segment then
        text = string.format("[GSO %d x %d] ", math.ceil(total / segment), segment) .. text
    end
    if #tls_infos > 0 then
        text = text .. " [TLS: " .. table.concat(tls_infos, ", ") .. "]"
    end
    pinfo.cols.info = text
    return captured
end

-- Registration. SMT has no assigned UDP port and its IP protocol number is
-- configurable, so both come from preferences; changing one moves the dissector.
local registered_port, registered_proto = 0, 0

local function register()
    local udp = DissectorTable.get("udp.port")
    local ip = DissectorTable.get("ip.proto")
    if registered_port ~= 0 then
        udp:remove(registered_port, smt)
        registered_port = 0
    end
    if registered_proto ~= 0 then
        ip:remove(registered_proto, smt)
        registered_proto = 0
    end
    local port = smt.prefs.udp_port
    if port > 0 and port <= 65535 then
        udp:add(port, smt)
        registered_port = port
    end
    local proto = smt.prefs.ip_proto
    if proto > 0 and proto <= 255 then
        ip:add(proto, smt)
        registered_proto = proto
    end
end

function smt.prefs_changed()
    register()
end

register()
-- Also offer SMT in "Decode As..." for any other UDP port.
DissectorTable.get("udp.port"):add_for_decode_as(smt)
