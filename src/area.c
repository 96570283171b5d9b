/*-------------------------------------------------------------------------
 *
 * area.c
 *		Large messages by reference: the ring's dynamic shared memory area,
 *		and the references that travel the queues in place of the messages.
 *
 * A dynamic shared memory area (utils/dsa.h) is to a segment what a heap is
 * to a fixed region: any number of allocations of any size, named by a
 * dsa_pointer that every attached process can turn into an address of its
 * own.  Each ring's segment has a chunk for one, laid out and estimated with
 * the rest (segment.c).  Its life is one call's message loop:
 *
 *	create		the leader, in place in that chunk, as the loop opens its
 *				carrier (dsa_create_in_place); the area counts the leader as
 *				attached until it detaches;
 *	allocate	the leader, for each copy it sends: the area grows by
 *				segments of its own as it needs to, up to a limit;
 *	reference	only a dsa_pointer and a length travel the queues;
 *	resolve		the leader, when a reference comes back (dsa_get_address),
 *				and only the one it expects next;
 *	free		the leader, once it is done with what came back;
 *	detach		the leader, as the loop closes its carrier: the last process
 *				attached gives the area's segments back, so nothing the call
 *				placed outlives it, and a kept ring idles without any.
 *
 * Workers pass references on without resolving them, so they do not attach.
 * A worker that had to read what a reference names would attach with
 * dsa_attach_in_place() on the same chunk and be counted in turn: the area,
 * and all it grew to, would then stay until the last such worker left.
 *
 * Whoever dies, nothing is left.  The area's segments are counted against
 * the ring's segment, whose detach, on any error, cancel or exit, drops the
 * leader's count; what a failed call had placed goes with them.
 *
 * The leader alone allocates and frees, so it alone knows what is in flight,
 * and bounds it (in_flight_bound()).  The area's size limit sits a little
 * above that bound, for the area's own bookkeeping, so that an area that
 * cannot grow is met as back-pressure while copies are on their way back;
 * only with none in flight is it an error.
 *
 * IDENTIFICATION
 *		src/area.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/shm_toc.h"
#include "utils/dsa.h"
#include "utils/memutils.h"

#include "carrier.h"
#include "cluster_state.h"

/*
 * The area's chunk of the segment.  The area's own bookkeeping takes most of
 * it, and messages go to segments the area adds as it grows, so a ring that
 * sends nothing by reference pays only this.  dsa_minimum_size() is two
 * pages on the majors we know, but it is dsa.c's to change; a fixed size
 * keeps the segment's layout the same on all of them.
 */
#define AREA_CHUNK_SIZE		16384

/*
 * Room the area may take beyond the bytes in flight.  Each segment the area
 * adds begins with a header and a map of its pages, about 1/64 of the
 * segment for the page map at 4 kB pages, and its free page manager hands
 * out whole pages: 1 MiB covers a few segments' headers and a partly used
 * page per size class.
 */
#define AREA_OVERHEAD(bound)	((bound) / 64 + 1024 * 1024)

/*
 * Most copies a pipeline keeps in flight by reference, whatever its bound in
 * bytes: the list of references in flight is allocated for this many, 1 MiB
 * at 16 bytes each, and a pipeline deeper than its queues goes no faster.
 */
#define MAX_REFERENCES_IN_FLIGHT	65536

/*
 * What travels the queues in place of a message: where the leader put it in
 * the ring's area, and how long it is.
 */
typedef struct reference
{
	dsa_pointer payload;
	Size		nbytes;
} reference;

/* A call's messages by reference: its area, and what is in flight. */
typedef struct by_reference_state
{
	dsa_area   *area;
	Size		bound;			/* bytes in flight that the area's limit
								 * allows */
	reference  *in_flight;		/* circular, capacity entries, oldest first */
	int			capacity;
	int			oldest;
	int			count;
	int			most;			/* the most ever in flight at once */
} by_reference_state;

static void by_reference_open(test_shm_mq_carrier *carrier, int copies);
static bool by_reference_put(test_shm_mq_carrier *carrier, Size *nbytes,
							 const void **data);
static const char *by_reference_resolve(test_shm_mq_carrier *carrier,
										Size nbytes, const void *data,
										Size *message_size);
static void by_reference_release(test_shm_mq_carrier *carrier);
static void by_reference_close(test_shm_mq_carrier *carrier);
static Size in_flight_bound(test_shm_mq_ring *ring, Size message_size);
static void allocation_context(void *arg);

const test_shm_mq_carrier_method test_shm_mq_by_reference_method = {
	.flushes_each = true,
	.by_reference = true,
	.open = by_reference_open,
	.put = by_reference_put,
	.resolve = by_reference_resolve,
	.release = by_reference_release,
	.close = by_reference_close,
};

/*
 * The size of the area's chunk of a ring's segment.
 */
Size
test_shm_mq_area_size(void)
{
	return Max(AREA_CHUNK_SIZE, dsa_minimum_size());
}

/*
 * Create the call's area in place, in the ring's chunk for it, and let it
 * grow as far as the call's bound needs.  The chunk may have held the area
 * of an earlier call on a kept ring: that one went as its loop ended, when
 * the leader, the only process attached to it, detached.
 */
static void
by_reference_open(test_shm_mq_carrier *carrier, int copies)
{
	test_shm_mq_ring *ring = carrier->ring;
	by_reference_state *state = palloc0(sizeof(by_reference_state));
	void	   *place;

	place = shm_toc_lookup(ring->toc, TEST_SHM_MQ_KEY_AREA(ring->nworkers),
						   false);
	state->area = dsa_create_in_place(place, test_shm_mq_area_size(),
									  test_shm_mq_area_tranche(),
									  ring->segment);
	state->bound = in_flight_bound(ring, carrier->message_size);
	dsa_set_size_limit(state->area,
					   add_size(add_size(test_shm_mq_area_size(),
										 state->bound),
								AREA_OVERHEAD(state->bound)));

	state->capacity = (int) Min(state->bound / carrier->message_size,
								(Size) Min(copies, MAX_REFERENCES_IN_FLIGHT));
	state->capacity = Max(state->capacity, 1);
	state->in_flight = palloc(mul_size(state->capacity, sizeof(reference)));
	carrier->private_state = state;
}

/*
 * How many bytes of copies sent by reference may be in flight at once: as
 * many as the ring's queues hold together, or two messages if that is more,
 * so that the leader can fill one while the other travels.
 */
static Size
in_flight_bound(test_shm_mq_ring *ring, Size message_size)
{
	return Max(mul_size((Size) ring->nworkers + 1, ring->queue_size),
			   mul_size(2, message_size));
}

/*
 * Copy the message into the area, and send a reference to it.
 *
 * Returns false, having allocated nothing, if the bound or the area's limit
 * leaves no room while copies in flight can still make some.  With none in
 * flight there is nothing to wait for, and that is an error; so is any
 * failure to add a segment to the area, which dsa.c raises with its own
 * words, ours in the context.
 */
static bool
by_reference_put(test_shm_mq_carrier *carrier, Size *nbytes,
				 const void **data)
{
	by_reference_state *state = (by_reference_state *) carrier->private_state;
	ErrorContextCallback context;
	reference  *placed;
	dsa_pointer payload;

	if (state->count == state->capacity)
		return false;

	context.callback = allocation_context;
	context.arg = carrier;
	context.previous = error_context_stack;
	error_context_stack = &context;
	payload = dsa_allocate_extended(state->area, carrier->message_size,
									DSA_ALLOC_HUGE | DSA_ALLOC_NO_OOM);
	error_context_stack = context.previous;

	if (!DsaPointerIsValid(payload))
	{
		if (state->count > 0)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate %zu bytes for a message in the ring's shared memory area",
						carrier->message_size),
				 errdetail("No message was in flight whose return could make room.")));
	}
	memcpy(dsa_get_address(state->area, payload), carrier->message,
		   carrier->message_size);

	placed = &state->in_flight[(state->oldest + state->count) %
							   state->capacity];
	memset(placed, 0, sizeof(*placed));
	placed->payload = payload;
	placed->nbytes = carrier->message_size;
	state->count++;
	state->most = Max(state->most, state->count);

	*nbytes = sizeof(*placed);
	*data = placed;
	return true;
}

/*
 * errcontext callback: a failure while the area grows, in our words.
 */
static void
allocation_context(void *arg)
{
	test_shm_mq_carrier *carrier = (test_shm_mq_carrier *) arg;

	errcontext("allocating %zu bytes for a message in the ring's shared memory area",
			   carrier->message_size);
}

/*
 * Check that what came back is the reference to the oldest copy in flight,
 * and return the message it names.  The leader resolves no reference it did
 * not make: one that came back changed must cost a clean error, not a wild
 * pointer.
 */
static const char *
by_reference_resolve(test_shm_mq_carrier *carrier, Size nbytes,
					 const void *data, Size *message_size)
{
	by_reference_state *state = (by_reference_state *) carrier->private_state;
	reference  *expected = &state->in_flight[state->oldest];
	reference	received;

	Assert(state->count > 0);
	if (nbytes == sizeof(received))
		memcpy(&received, data, sizeof(received));
	if (nbytes != sizeof(received) ||
		received.payload != expected->payload ||
		received.nbytes != expected->nbytes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("message corrupted"),
				 errdetail("The reference received is not the one sent.")));

	*message_size = expected->nbytes;
	return dsa_get_address(state->area, expected->payload);
}

/*
 * Free the oldest copy in flight: the leader is done with it.
 */
static void
by_reference_release(test_shm_mq_carrier *carrier)
{
	by_reference_state *state = (by_reference_state *) carrier->private_state;

	Assert(state->count > 0);
	dsa_free(state->area, state->in_flight[state->oldest].payload);
	state->oldest = (state->oldest + 1) % state->capacity;
	state->count--;
}

/*
 * End of the loop: detach the area, which, the leader being the only process
 * attached, gives back every segment it grew to.
 */
static void
by_reference_close(test_shm_mq_carrier *carrier)
{
	by_reference_state *state = (by_reference_state *) carrier->private_state;

	elog(DEBUG1, "zero-copy pipeline: at most %d messages of %zu bytes in flight, bound %zu bytes",
		 state->most, carrier->message_size, state->bound);
	dsa_detach(state->area);
	pfree(state->in_flight);
	pfree(state);
	carrier->private_state = NULL;
}
