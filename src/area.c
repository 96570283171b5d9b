/*-------------------------------------------------------------------------
 *
 * area.c
 *		Large messages without copies: the ring's dynamic shared memory area,
 *		and the references that travel the queues in their place.
 *
 * A dynamic shared memory area (utils/dsa.h) is to a segment what a heap is
 * to a fixed region: any number of allocations of any size, named by a
 * dsa_pointer that every attached process can turn into an address of its
 * own.  Each ring has one, created in place in its segment as a chunk of the
 * table of contents, estimated with the rest.  Its life:
 *
 *	create	the leader, as it lays out the segment (dsa_create_in_place);
 *	attach	each worker as it joins, and the leader again for each call on
 *			a kept ring (dsa_attach_in_place); both count a reference,
 *			dropped when that process detaches the segment;
 *	allocate	the leader, once per message it sends: the area grows by new
 *			segments of its own as it needs to;
 *	reference	only a dsa_pointer and a length travel the queues; a worker
 *			passes them on without resolving them, let alone reading the
 *			payload;
 *	resolve	the leader, when the reference comes back (dsa_get_address);
 *	free	the leader, once it has checked what came back;
 *	detach	each process as it leaves the segment: the last one out gives
 *			the area's own segments back, so they go with the ring.
 *
 * Whoever dies, nothing is left: every reference to the area is counted
 * against the ring's segment, whose detach, on any exit or abort, drops it.
 * An allocation not freed because a call failed goes with the area, and the
 * area goes with the ring, which a failed call always takes down.  The leader
 * alone allocates and frees, so it alone knows what is in flight: it keeps
 * that under a bound (test_shm_mq_zero_copy_bound()), and waits for messages
 * to come back before it sends more, as it does when a queue is full.
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
#include "utils/memutils.h"

#include "ring.h"

/* test_shm_mq_ext.zero_copy_min_bytes; 0 is off */
int			test_shm_mq_zero_copy_min_bytes = 0;

/*
 * What the leader keeps about the messages in flight in a zero-copy
 * pipeline: their references, oldest first, since the ring returns them in
 * the order they were sent.
 */
struct test_shm_mq_in_flight
{
	test_shm_mq_reference *references;	/* circular, capacity entries */
	int			capacity;
	int			oldest;
	int			count;
	int			most;			/* the most ever in flight at once */
};

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
 * How many bytes of messages a zero-copy call may have in flight: as many
 * as the ring's queues hold together, so that zero copy holds no more than
 * copying would, or two messages if that is more, so that the leader can
 * fill one while the other travels.
 */
Size
test_shm_mq_zero_copy_bound(test_shm_mq_ring *ring, Size message_size)
{
	return Max(mul_size((Size) ring->nworkers + 1, ring->queue_size),
			   mul_size(2, message_size));
}

/*
 * The area's chunk of the segment.  The area's own bookkeeping takes most of
 * it, and messages go to segments the area adds as it grows, so a ring that
 * sends nothing by reference pays only this.  dsa_minimum_size() is two
 * pages on the majors we know, but it is dsa.c's to change; a fixed size
 * keeps the segment's layout the same on all of them.
 */
#define AREA_CHUNK_SIZE		16384

Size
test_shm_mq_area_size(void)
{
	return Max(AREA_CHUNK_SIZE, dsa_minimum_size());
}

/*
 * Create the area in place, in the chunk at place of a new ring's segment;
 * the leader is attached to it for the ring's first call.
 */
void
test_shm_mq_area_create(test_shm_mq_ring *ring, void *place)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(ring->call_context);

	ring->area = dsa_create_in_place(place, test_shm_mq_area_size(),
									 LWTRANCHE_PARALLEL_QUERY_DSA,
									 ring->segment);
	MemoryContextSwitchTo(oldcontext);
}

/*
 * Attach the leader to a kept ring's area for a call.  Only once the ring
 * has been claimed: its workers are then all still there, so the area is
 * too.
 */
void
test_shm_mq_area_attach(test_shm_mq_ring *ring)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(ring->call_context);

	ring->area = dsa_attach_in_place(shm_toc_lookup(ring->toc,
													TEST_SHM_MQ_KEY_AREA(ring->nworkers),
													false),
									 ring->segment);
	MemoryContextSwitchTo(oldcontext);
}

/*
 * The leader's end of a call: unmap the area's own segments before the ring's
 * segment is detached, which drops the leader's reference to the area.
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
 * Returns false, having allocated nothing, if the area cannot hold it now,
 * as long as in_flight messages are on their way back to free room.  With
 * none in flight there is nothing to wait for, and that is an error.
 */
bool
test_shm_mq_area_put(test_shm_mq_ring *ring, Size nbytes, const char *data,
					 int in_flight, test_shm_mq_reference *reference)
{
	dsa_pointer payload;

	payload = dsa_allocate_extended(ring->area, nbytes,
									DSA_ALLOC_HUGE | DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(payload))
	{
		if (in_flight > 0)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate %zu bytes for a message in the ring's shared memory area",
						nbytes),
				 errdetail("No message was in flight whose return could make room.")));
	}

	memcpy(dsa_get_address(ring->area, payload), data, nbytes);
	reference->payload = payload;
	reference->nbytes = nbytes;
	return true;
}

/*
 * Check that a message received is the reference expected, and return the
 * payload it names.  The leader resolves no reference it did not make: a
 * worker that damaged one must cost a clean error, not a wild pointer.
 */
const char *
test_shm_mq_area_get(test_shm_mq_ring *ring, Size nbytes, const void *data,
					 const test_shm_mq_reference *expected)
{
	if (nbytes != sizeof(test_shm_mq_reference) ||
		memcmp(data, expected, sizeof(test_shm_mq_reference)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("message corrupted"),
				 errdetail("The reference received is not the one sent.")));

	return dsa_get_address(ring->area, expected->payload);
}

/*
 * Free a message the leader has done with.
 */
void
test_shm_mq_area_free(test_shm_mq_ring *ring,
					  const test_shm_mq_reference *reference)
{
	dsa_free(ring->area, reference->payload);
}

/*
 * Room to remember up to max_count references in flight.
 */
test_shm_mq_in_flight *
test_shm_mq_in_flight_create(int max_count)
{
	test_shm_mq_in_flight *in_flight = palloc0(sizeof(test_shm_mq_in_flight));

	in_flight->capacity = max_count;
	in_flight->references =
		palloc_extended(mul_size(max_count, sizeof(test_shm_mq_reference)),
						MCXT_ALLOC_HUGE);
	return in_flight;
}

int
test_shm_mq_in_flight_count(const test_shm_mq_in_flight *in_flight)
{
	return in_flight->count;
}

int
test_shm_mq_in_flight_most(const test_shm_mq_in_flight *in_flight)
{
	return in_flight->most;
}

/*
 * Remember a reference just sent.
 */
void
test_shm_mq_in_flight_push(test_shm_mq_in_flight *in_flight,
						   const test_shm_mq_reference *reference)
{
	Assert(in_flight->count < in_flight->capacity);
	in_flight->references[(in_flight->oldest + in_flight->count) %
						  in_flight->capacity] = *reference;
	in_flight->count++;
	in_flight->most = Max(in_flight->most, in_flight->count);
}

/*
 * The reference that must come back next.
 */
const test_shm_mq_reference *
test_shm_mq_in_flight_oldest(const test_shm_mq_in_flight *in_flight)
{
	Assert(in_flight->count > 0);
	return &in_flight->references[in_flight->oldest];
}

/*
 * Forget the oldest reference: it came back.
 */
void
test_shm_mq_in_flight_pop(test_shm_mq_in_flight *in_flight)
{
	Assert(in_flight->count > 0);
	in_flight->oldest = (in_flight->oldest + 1) % in_flight->capacity;
	in_flight->count--;
}
