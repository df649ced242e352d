/* penlink_message helpers shared by the decoder and the session (message.c). */
#ifndef PENLINK_MESSAGE_H
#define PENLINK_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "pl/envelope.h"
#include "pl/frame.h"

/** Fills the header fields and size of @p m from a whole frame. */
void msg_set_frame(penlink_message *m, const uint8_t *frame, size_t len);
/** The body's field name, "none" without one, "damaged" for NULL. */
const char *msg_body_name(const pl_envelope *env);

#endif
