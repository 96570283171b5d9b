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
 *	allocate	the leader, once: a region of as many slots, each the
 *				message's size, as the call may have in flight; the area
 *				adds a segment of its own to hold it;
 *	place		the leader, for each copy it sends: into the next slot, in
 *				turn, so that a slot is written again only once the copy in
 *				it has come back;
 *	reference	only a dsa_pointer and a length travel the queues;
 *	resolve		the leader, when a reference comes back (dsa_get_address),
 *				and only the one it expects next;
 *	detach		the leader, as the loop closes its carrier: the last process
 *				attached gives the area's segments back, so nothing the call
 *				placed outlives it, and a kept ring idles without any.
 *
 * One region for the whole call, rather than an allocation per copy, is
 * what keeps a large message's cost near one memcpy: the area gets a new
 * segment for a large allocation, and gives it back as it is freed, so each
 * copy would pay for a segment's creation and for faulting in its pages.
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
 * The leader alone places copies and takes them back, so it alone knows
 * what is in flight, and bounds it (in_flight_bound()): as many copies as
 * the region has slots.  With all slots in flight, the leader receives
 * before it sends again, as when a queue is full.
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
 * Most copies a pipeline keeps in flight by reference, whatever its bound in
 * bytes: a pipeline deeper than its queues goes no faster, and the slots'
 * bookkeeping stays small.
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

/*
 * A call's messages by reference: its area, and the region of slots the
 * copies in flight take, in turn.
 */
typedef struct by_reference_state
{
	dsa_area   *area;
	dsa_pointer region;			/* capacity slots of the message's size */
	char	   *region_address; /* ... as mapped here */
	int			capacity;
	int			oldest;			/* the slot of the oldest copy in flight */
	int			count;			/* copies in flight */
	reference	sent;			/* what travels for the copy put last */
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
 * Create the call's area in place, in the ring's chunk for it, and allocate
 * the region of slots from it.  The chunk may have held the area of an
 * earlier call on a kept ring: that one went as its loop ended, when the
 * leader, the only process attached to it, detached.  The area's own
 * errors, a segment the system will not give included, come with our
 * context.
 */
static void
by_reference_open(test_shm_mq_carrier *carrier, int copies)
{
	test_shm_mq_ring *ring = carrier->ring;
	by_reference_state *state = palloc0(sizeof(by_reference_state));
	ErrorContextCallback context;
	Size		bound = in_flight_bound(ring, carrier->message_size);
	Size		region_size;
	void	   *place;

	state->capacity = (int) Min(bound / carrier->message_size,
								(Size) Min(copies, MAX_REFERENCES_IN_FLIGHT));
	state->capacity = Max(state->capacity, 1);
	region_size = mul_size(state->capacity, carrier->message_size);

	place = shm_toc_lookup(ring->toc, TEST_SHM_MQ_KEY_AREA(ring->nworkers),
						   false);
	state->area = dsa_create_in_place(place, test_shm_mq_area_size(),
									  test_shm_mq_area_tranche(),
									  ring->segment);

	context.callback = allocation_context;
	context.arg = carrier;
	context.previous = error_context_stack;
	error_context_stack = &context;
	state->region = dsa_allocate_extended(state->area, region_size,
										  DSA_ALLOC_HUGE | DSA_ALLOC_NO_OOM);
	error_context_stack = context.previous;
	if (!DsaPointerIsValid(state->region))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate %zu bytes for messages in the ring's shared memory area",
						region_size)));
	state->region_address = dsa_get_address(state->area, state->region);
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
 * Copy the message into the next slot, and send a reference to it.  Returns
 * false, placing nothing, if every slot holds a copy in flight.
 */
static bool
by_reference_put(test_shm_mq_carrier *carrier, Size *nbytes,
				 const void **data)
{
	by_reference_state *state = (by_reference_state *) carrier->private_state;
	int			slot;
	Size		offset;

	if (state->count == state->capacity)
		return false;

	slot = (state->oldest + state->count) % state->capacity;
	offset = (Size) slot * carrier->message_size;
	memcpy(state->region_address + offset, carrier->message,
		   carrier->message_size);
	state->count++;

	memset(&state->sent, 0, sizeof(state->sent));
	state->sent.payload = state->region + offset;
	state->sent.nbytes = carrier->message_size;
	*nbytes = sizeof(state->sent);
	*data = &state->sent;
	return true;
}

/*
 * errcontext callback: a failure while the area grows, in our words.
 */
static void
allocation_context(void *arg)
{
	test_shm_mq_carrier *carrier = (test_shm_mq_carrier *) arg;

	errcontext("allocating room for messages of %zu bytes in the ring's shared memory area",
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
	Size		offset = (Size) state->oldest * carrier->message_size;
	reference	received;

	Assert(state->count > 0);
	if (nbytes == sizeof(received))
		memcpy(&received, data, sizeof(received));
	if (nbytes != sizeof(received) ||
		received.payload != state->region + offset ||
		received.nbytes != carrier->message_size)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("message corrupted"),
				 errdetail("The reference received is not the one sent.")));

	*message_size = carrier->message_size;
	return state->region_address + offset;
}

/*
 * The oldest copy in flight is back, and done with: its slot is free.
 */
static void
by_reference_release(test_shm_mq_carrier *carrier)
{
	by_reference_state *state = (by_reference_state *) carrier->private_state;

	Assert(state->count > 0);
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

	dsa_detach(state->area);
	pfree(state);
	carrier->private_state = NULL;
}
