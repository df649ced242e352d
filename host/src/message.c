/*
 * Messages as engineers see them (penlink_message): a frame's header fields,
 * its Envelope's body name, and every field present, walked from the
 * protobuf-c descriptors so that a field added to penlink.proto shows up
 * without code here. Shared by the decoder (files and captures) and the
 * session's message callback (`penlink -v`).
 */
#include <string.h>

#include "message.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void msg_set_frame(penlink_message *m, const uint8_t *frame, size_t len)
{
    if (len < PL_FRAME_HEADER_SIZE)
        return;
    m->version = frame[4];
    m->flags = frame[5];
    m->payload_len = le32(frame + 6);
    m->payload_crc = le32(frame + 10);
    m->header_check = (uint32_t)frame[14] | (uint32_t)frame[15] << 8;
    m->size = (uint32_t)len;
}

const char *msg_body_name(const pl_envelope *env)
{
    if (!env)
        return "damaged";
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY__NOT_SET)
        return "none";
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &penlink__v1__envelope__descriptor, (unsigned)env->body_case);
    return f ? f->name : "none";
}

typedef struct walk {
    int (*cb)(void *user, const penlink_field *f);
    void *user;
} walk;

static int present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd)
{
    const uint8_t *base = (const uint8_t *)msg;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t c;
        memcpy(&c, base + fd->quantifier_offset, sizeof c);
        return c == fd->id;
    }
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n;
        memcpy(&n, base + fd->quantifier_offset, sizeof n);
        return n > 0;
    }
    if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        const void *p;
        memcpy(&p, base + fd->offset, sizeof p);
        return p != NULL;
    }
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset) {
        protobuf_c_boolean has;
        memcpy(&has, base + fd->quantifier_offset, sizeof has);
        return has != 0;
    }
    return 1;
}

static int walk_message(walk *w, const ProtobufCMessage *msg, int depth);

/* One value at @p p, of the field's type. */
static int visit(walk *w, const ProtobufCFieldDescriptor *fd, const uint8_t *p, int depth,
                 int repeated)
{
    penlink_field f;
    memset(&f, 0, sizeof f);
    f.name = fd->name;
    f.number = fd->id;
    f.depth = depth;
    f.repeated = repeated;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        f.type = PENLINK_FIELD_UINT;
        f.u = v;
        break;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        f.type = PENLINK_FIELD_UINT;
        f.u = v;
        break;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t v;
        memcpy(&v, p, sizeof v);
        f.type = PENLINK_FIELD_INT;
        f.i = v;
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v;
        memcpy(&v, p, sizeof v);
        f.type = PENLINK_FIELD_INT;
        f.i = v;
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v;
        memcpy(&v, p, sizeof v);
        f.type = PENLINK_FIELD_BOOL;
        f.u = v != 0;
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        memcpy(&s, p, sizeof s);
        f.type = PENLINK_FIELD_TEXT;
        f.text = s ? s : "";
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b;
        memcpy(&b, p, sizeof b);
        f.type = PENLINK_FIELD_BYTES;
        f.bytes = b.data;
        f.len = b.len;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub;
        memcpy(&sub, p, sizeof sub);
        f.type = PENLINK_FIELD_BEGIN;
        if (w->cb(w->user, &f) != 0)
            return -1;
        if (sub && walk_message(w, sub, depth + 1) != 0)
            return -1;
        f.type = PENLINK_FIELD_END;
        break;
    }
    default: return 0; /* float and double: not in penlink.proto */
    }
    return w->cb(w->user, &f) != 0 ? -1 : 0;
}

static int walk_message(walk *w, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const uint8_t *base = (const uint8_t *)msg;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!present(msg, fd))
            continue;
        if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
            if (visit(w, fd, base + fd->offset, depth, 0) != 0)
                return -1;
            continue;
        }
        size_t n, size;
        const uint8_t *arr;
        memcpy(&n, base + fd->quantifier_offset, sizeof n);
        memcpy(&arr, base + fd->offset, sizeof arr);
        switch (fd->type) {
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64: size = 8; break;
        case PROTOBUF_C_TYPE_BOOL: size = sizeof(protobuf_c_boolean); break;
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_MESSAGE: size = sizeof(void *); break;
        case PROTOBUF_C_TYPE_BYTES: size = sizeof(ProtobufCBinaryData); break;
        default: size = 4; break;
        }
        for (size_t k = 0; k < n; k++)
            if (visit(w, fd, arr + k * size, depth, 1) != 0)
                return -1;
    }
    return 0;
}

int penlink_message_fields(const penlink_message *m, int (*cb)(void *user, const penlink_field *f),
                           void *user)
{
    if (!m || !cb || !m->internal_)
        return PENLINK_ERR_INVALID_ARG;
    walk w = { cb, user };
    return walk_message(&w, m->internal_, 0) == 0 ? PENLINK_OK : PENLINK_ERR_CANCELLED;
}
