/*-------------------------------------------------------------------------
 *
 * carrier.c
 *		Choosing how a call's message travels, and the plain way: copied.
 *
 * Copied, a message goes into each queue and out of it again, hop by hop,
 * as in core's module: what the queues carry is the message itself, and
 * what comes back is checked as it is.  A message at least
 * test_shm_mq_ext.zero_copy_min_bytes long travels by reference instead
 * (area.c).
 *
 * IDENTIFICATION
 *		src/carrier.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "carrier.h"

static void copying_open(test_shm_mq_carrier *carrier, int copies);
static bool copying_put(test_shm_mq_carrier *carrier, Size *nbytes,
						const void **data);
static const char *copying_resolve(test_shm_mq_carrier *carrier, Size nbytes,
								   const void *data, Size *message_size);
static void copying_release(test_shm_mq_carrier *carrier);
static void copying_close(test_shm_mq_carrier *carrier);

const test_shm_mq_carrier_method test_shm_mq_copying_method = {
	.flushes_each = false,
	.by_reference = false,
	.open = copying_open,
	.put = copying_put,
	.resolve = copying_resolve,
	.release = copying_release,
	.close = copying_close,
};

/*
 * Get a carrier ready for a call on ring that sends message, at most copies
 * times, choosing how it travels.
 */
void
test_shm_mq_carrier_open(test_shm_mq_carrier *carrier,
						 test_shm_mq_ring *ring, const char *message,
						 Size message_size, int copies)
{
	bool		by_reference = test_shm_mq_zero_copy_min_bytes > 0 &&
		message_size >= (Size) test_shm_mq_zero_copy_min_bytes;

	carrier->method = by_reference ? &test_shm_mq_by_reference_method :
		&test_shm_mq_copying_method;
	carrier->ring = ring;
	carrier->message = message;
	carrier->message_size = message_size;
	carrier->private_state = NULL;
	carrier->method->open(carrier, copies);
}

/*
 * Count copies copies of the carrier's message as sent round the ring, for
 * the call's counts.
 */
void
test_shm_mq_carrier_count(test_shm_mq_carrier *carrier, int copies)
{
	int64		bytes = (int64) carrier->message_size * copies;

	carrier->ring->messages += copies;
	carrier->ring->bytes += bytes;
	if (carrier->method->by_reference)
		carrier->ring->bytes_by_reference += bytes;
}

/* Copying needs nothing beyond the message. */
static void
copying_open(test_shm_mq_carrier *carrier, int copies)
{
}

/* Every copy is the message itself, and there is always room for it. */
static bool
copying_put(test_shm_mq_carrier *carrier, Size *nbytes, const void **data)
{
	*nbytes = carrier->message_size;
	*data = carrier->message;
	return true;
}

/* What came back is the message as the ring left it. */
static const char *
copying_resolve(test_shm_mq_carrier *carrier, Size nbytes, const void *data,
				Size *message_size)
{
	*message_size = nbytes;
	return (const char *) data;
}

/* A copy that came back holds nothing of ours. */
static void
copying_release(test_shm_mq_carrier *carrier)
{
}

static void
copying_close(test_shm_mq_carrier *carrier)
{
}
