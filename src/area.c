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
 * the rest (segment.c).  Its life is one call:
 *
 *	create		the leader, in place in that chunk, when the call first sends
 *				a message by reference (dsa_create_in_place); the area counts
 *				the leader as attached until it detaches the ring's segment;
 *	allocate	the leader, for each message it sends: the area grows by
 *				segments of its own as it needs to, up to a limit;
 *	reference	only a dsa_pointer and a length travel the queues;
 *	resolve		the leader, when a reference comes back (dsa_get_address);
 *	free		the leader, once it has checked what came back;
 *	detach		the leader, as the call ends (dsa_detach, then the ring's
 *				segment): the last process attached gives the area's
 *				segments back, so nothing the call placed outlives it.
 *
 * Workers pass references on without resolving them, so they do not attach.
 * A worker that read what a reference names would attach with
 * dsa_attach_in_place() on the same chunk; being counted, it would then keep
 * the area, and all it grew to, for as long as it stayed.  A kept ring would
 * hold that memory while idle; this way a kept ring's next call starts a new
 * area in the same chunk, and an idle ring holds none.
 *
 * Whoever dies, nothing is left.  The area's segments are counted against
 * the ring's segment, whose detach, on any error, cancel or exit, drops the
 * leader's count; what a failed call had placed goes with them.
 *
 * The leader alone allocates and frees, so it alone knows what is in flight,
 * and bounds it (test_shm_mq_zero_copy_bound()).  The area's size limit sits
 * a little above that bound, for the area's own bookkeeping, so that an area
 * that cannot grow is met as back-pressure while messages are on their way
 * back; only with none in flight is it an error.
 *
 * The area's lock belongs to parallel query's own tranche: an extension that
 * is not preloaded could otherwise name a tranche only by spending a new one
 * in every process, and PostgreSQL 19 has room for few.
 *
 * IDENTIFICATION
 *		src/area.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/lwlock.h"
#include "storage/shm_toc.h"
#include "utils/dsa.h"
#include "utils/memutils.h"

#include "ring.h"

/*
 * The area's chunk of the segment.  The area's own bookkeeping takes most of
 * it, and messages go to segments the area adds as it grows, so a ring that
 * sends nothing by reference pays only this.  dsa_minimum_size() is two
 * pages on the majors we know, but it is dsa.c's to change; a fixed size
 * keeps the segment's layout the same on all of them.
 */
#define AREA_CHUNK_SIZE		16384

/*
 * Room the area may take beyond the bytes in flight: each of its segments
 * has a header and a map of its pages, and the free page manager works in
 * whole pages.
 */
#define AREA_OVERHEAD(bound)	((bound) / 64 + 1024 * 1024)

/*
 * Whether a message of this size travels by reference.
 */
bool
test_shm_mq_zero_copy(Size message_size)
{
	return test_shm_mq_zero_copy_min_bytes > 0 &&
		message_size >= (Size) test_shm_mq_zero_copy_min_bytes;
}

/*
 * How many bytes of messages sent by reference may be in flight at once: as
 * many as the ring's queues hold together, or two messages if that is more,
 * so that the leader can fill one while the other travels.
 */
Size
test_shm_mq_zero_copy_bound(test_shm_mq_ring *ring, Size message_size)
{
	return Max(mul_size((Size) ring->nworkers + 1, ring->queue_size),
			   mul_size(2, message_size));
}

/*
 * The size of the area's chunk of a ring's segment.
 */
Size
test_shm_mq_area_size(void)
{
	return Max(AREA_CHUNK_SIZE, dsa_minimum_size());
}

/*
 * Get the call's area ready for bound bytes in flight: create it in place,
 * in the ring's chunk for it, unless the call already has, and let it grow
 * as far as that bound needs.  The chunk may have held the area of an
 * earlier call on a kept ring: that one went as its call ended, when the
 * leader, the only process attached to it, detached the segment.
 */
void
test_shm_mq_area_open(test_shm_mq_ring *ring, Size bound)
{
	if (ring->area == NULL)
	{
		MemoryContext oldcontext;
		void	   *place;

		place = shm_toc_lookup(ring->toc,
							   TEST_SHM_MQ_KEY_AREA(ring->nworkers), false);
		oldcontext = MemoryContextSwitchTo(ring->call_context);
		ring->area = dsa_create_in_place(place, test_shm_mq_area_size(),
										 LWTRANCHE_PARALLEL_QUERY_DSA,
										 ring->segment);
		MemoryContextSwitchTo(oldcontext);
		ring->area_bound = 0;
	}

	/* Never lower: what the area holds already counts against the limit. */
	if (bound > ring->area_bound)
	{
		dsa_set_size_limit(ring->area,
						   add_size(add_size(test_shm_mq_area_size(), bound),
									AREA_OVERHEAD(bound)));
		ring->area_bound = bound;
	}
}

/*
 * End of a call: unmap the area's segments, if the call made an area.
 * Detaching the ring's segment afterwards drops the leader's count, and
 * with it the area.
 */
void
test_shm_mq_area_detach(test_shm_mq_ring *ring)
{
	if (ring->area == NULL)
		return;
	dsa_detach(ring->area);
	ring->area = NULL;
}

/*
 * Copy a message into the area, and return a reference to it.
 *
 * Returns false, having allocated nothing, if the area cannot take it now,
 * as long as in_flight messages are on their way back to free room.  With
 * none in flight there is nothing to wait for, and that is an error; so is
 * any failure to add a segment to the area, which dsa.c raises as an error
 * of the dynamic shared memory layer.  Both are reported alike.
 */
bool
test_shm_mq_area_put(test_shm_mq_ring *ring, Size nbytes, const char *data,
					 int in_flight, test_shm_mq_reference *reference)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile dsa_pointer payload = InvalidDsaPointer;
	ErrorData  *edata = NULL;

	PG_TRY();
	{
		payload = dsa_allocate_extended(ring->area, nbytes,
										DSA_ALLOC_HUGE | DSA_ALLOC_NO_OOM);
	}
	PG_CATCH();
	{
		/*
		 * Only a want of resources is ours to word; anything else, a cancel
		 * among them, goes on as it was.
		 */
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) !=
			ERRCODE_INSUFFICIENT_RESOURCES)
			PG_RE_THROW();
		FlushErrorState();
	}
	PG_END_TRY();

	if (!DsaPointerIsValid(payload))
	{
		if (edata == NULL && in_flight > 0)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate %zu bytes for a message in the ring's shared memory area",
						nbytes),
				 edata != NULL ?
				 errdetail_internal("%s", edata->message) :
				 errdetail("No message was in flight whose return could make room.")));
	}

	memcpy(dsa_get_address(ring->area, payload), data, nbytes);
	memset(reference, 0, sizeof(*reference));
	reference->payload = payload;
	reference->nbytes = nbytes;
	return true;
}

/*
 * Check that a message received is the reference expected, and return the
 * message it names.  The leader resolves no reference it did not make: one
 * that came back changed must cost a clean error, not a wild pointer.
 */
const char *
test_shm_mq_area_get(test_shm_mq_ring *ring, Size nbytes, const void *data,
					 const test_shm_mq_reference *expected)
{
	test_shm_mq_reference received;

	if (nbytes == sizeof(received))
		memcpy(&received, data, sizeof(received));
	if (nbytes != sizeof(received) ||
		received.payload != expected->payload ||
		received.nbytes != expected->nbytes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("message corrupted"),
				 errdetail("The reference received is not the one sent.")));

	return dsa_get_address(ring->area, expected->payload);
}

/*
 * Free a message the leader is done with.
 */
void
test_shm_mq_area_free(test_shm_mq_ring *ring,
					  const test_shm_mq_reference *reference)
{
	dsa_free(ring->area, reference->payload);
}
