/*-------------------------------------------------------------------------
 *
 * segment.c
 *		The first step of a round trip: size a ring's dynamic shared memory
 *		segment, create it, and lay it out with a table of contents, its
 *		header and its queues, before any worker exists.
 *
 * Every chunk and key is estimated first, then allocated and inserted in the
 * same order, as parallel.c does; test_shm_mq_estimate() and
 * test_shm_mq_layout() (layout.c) show the result.  The segment belongs to
 * the current resource owner from its creation on, so an error anywhere
 * detaches it.
 *
 * IDENTIFICATION
 *		src/segment.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/memutils.h"

#include "ring.h"

/*
 * The largest segment a ring may ask for: dsm_create() takes a Size, the
 * size reaches SQL as an int8, and the operating system as an off_t.
 */
#define MAX_SEGMENT_SIZE \
	((uint64) PG_INT64_MAX < (uint64) SIZE_MAX ? \
	 (uint64) PG_INT64_MAX : (uint64) SIZE_MAX)

/* Counts this leader's rings; see test_shm_mq_header.ring_number. */
static uint64 next_ring_number = 1;

static Size header_size(int nworkers);
static void estimate_segment(shm_toc_estimator *estimator, Size queue_size,
							 int nworkers);
static test_shm_mq_ring *new_ring(int64 queue_size, int nworkers,
								  test_shm_mq_wait_strategy strategy,
								  Size segment_size);
static void init_header(test_shm_mq_ring *ring);
static void create_queues(test_shm_mq_ring *ring);
static void create_area(test_shm_mq_ring *ring);
static void create_wait_slots(test_shm_mq_ring *ring);

/*
 * Check a worker count given at the SQL level.
 *
 * min_workers is 1 where the leader talks to the ring with blocking calls, and
 * 0 where it can send to itself.
 */
void
test_shm_mq_check_worker_count(int nworkers, int min_workers)
{
	if (nworkers < min_workers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of workers must be at least %d", min_workers)));
	if (nworkers > max_worker_processes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of workers must not exceed \"max_worker_processes\""),
				 errdetail_plural("%d worker was requested, but \"max_worker_processes\" is %d.",
								  "%d workers were requested, but \"max_worker_processes\" is %d.",
								  nworkers, nworkers, max_worker_processes),
				 errhint("Request fewer workers, or raise \"max_worker_processes\" and restart the server.")));
}

/*
 * Check a queue size given at the SQL level, for a ring of nworkers workers.
 *
 * A size is only too large for a given number of queues.  Data queues are
 * the only chunks whose size the caller chooses, and each is rounded up to a
 * multiple of ALIGNOF_BUFFER, as is everything else; so the segment takes
 * what the rest of it takes, with zero-sized data queues, plus nworkers + 1
 * aligned queues.  That gives the largest queue size that fits, which is
 * checked before the estimator is asked for the whole, so that nothing can
 * overflow.
 */
void
test_shm_mq_check_queue_size(int64 queue_size, int nworkers)
{
	shm_toc_estimator estimator;
	Size		fixed_size;
	uint64		max_queue_size;

	if (queue_size < 0 || (uint64) queue_size < shm_mq_minimum_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue size must be at least %zu bytes",
						shm_mq_minimum_size)));

	estimate_segment(&estimator, 0, nworkers);
	fixed_size = shm_toc_estimate(&estimator);
	max_queue_size = (MAX_SEGMENT_SIZE - fixed_size) / ((uint64) nworkers + 1);
	max_queue_size -= max_queue_size % ALIGNOF_BUFFER;
	if ((uint64) queue_size > max_queue_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue size %lld is too large", (long long) queue_size),
				 errdetail_plural("With %d worker, the largest queue size is %llu bytes.",
								  "With %d workers, the largest queue size is %llu bytes.",
								  nworkers, nworkers,
								  (unsigned long long) max_queue_size)));
}

/*
 * The exact number of bytes a ring of nworkers workers with queues of
 * queue_size bytes asks dsm_create() for; fails if the queue size is
 * invalid.
 */
Size
test_shm_mq_segment_size(int64 queue_size, int nworkers)
{
	shm_toc_estimator estimator;
	Size		segment_size;

	test_shm_mq_check_queue_size(queue_size, nworkers);
	estimate_segment(&estimator, (Size) queue_size, nworkers);
	segment_size = shm_toc_estimate(&estimator);
	Assert(segment_size <= MAX_SEGMENT_SIZE);
	return segment_size;
}

/*
 * Size of the shared header, which ends with one slot per worker.
 */
static Size
header_size(int nworkers)
{
	return add_size(offsetof(test_shm_mq_header, workers),
					mul_size(nworkers, sizeof(test_shm_mq_worker_process)));
}

/*
 * Count every chunk and key of the segment, in the order
 * test_shm_mq_ring_create() allocates and inserts them.
 */
static void
estimate_segment(shm_toc_estimator *estimator, Size queue_size, int nworkers)
{
	int			queue;
	int			worker;

	shm_toc_initialize_estimator(estimator);

	shm_toc_estimate_chunk(estimator, header_size(nworkers));
	for (queue = 0; queue <= nworkers; queue++)
		shm_toc_estimate_chunk(estimator, queue_size);
	for (worker = 1; worker <= nworkers; worker++)
		shm_toc_estimate_chunk(estimator, TEST_SHM_MQ_ERROR_QUEUE_SIZE);
	shm_toc_estimate_chunk(estimator, test_shm_mq_area_size());
	shm_toc_estimate_chunk(estimator,
						   test_shm_mq_wait_slots_size(nworkers + 1));

	shm_toc_estimate_keys(estimator, TEST_SHM_MQ_KEYS(nworkers));
}

/*
 * Create a ring's segment and lay it out, without starting any worker.
 *
 * The caller either starts the ring with test_shm_mq_ring_start() (setup.c)
 * or only inspects it; either way it ends with test_shm_mq_ring_release()
 * (release.c), or with the (sub)transaction's cleanup if an error comes
 * first.
 */
test_shm_mq_ring *
test_shm_mq_ring_create(int64 queue_size, int nworkers,
						test_shm_mq_wait_strategy strategy)
{
	Size		segment_size = test_shm_mq_segment_size(queue_size, nworkers);
	test_shm_mq_ring *ring;

	test_shm_mq_init_wait_events();

	ring = new_ring(queue_size, nworkers, strategy, segment_size);
	ring->segment = dsm_create(segment_size, 0);
	ring->handle = dsm_segment_handle(ring->segment);
	ring->toc = shm_toc_create(TEST_SHM_MQ_MAGIC,
							   dsm_segment_address(ring->segment),
							   segment_size);

	/* Allocate and insert in the order estimate_segment() counted. */
	init_header(ring);
	create_queues(ring);
	create_area(ring);
	create_wait_slots(ring);

	return ring;
}

/*
 * The leader's view of a new ring, in a memory context of its own under
 * the transaction's, with no segment yet.
 */
static test_shm_mq_ring *
new_ring(int64 queue_size, int nworkers, test_shm_mq_wait_strategy strategy,
		 Size segment_size)
{
	MemoryContext context;
	test_shm_mq_ring *ring;

	context = AllocSetContextCreate(CurTransactionContext,
									"test_shm_mq_ext ring",
									ALLOCSET_SMALL_SIZES);
	ring = MemoryContextAllocZero(context, sizeof(test_shm_mq_ring));
	ring->context = context;
	ring->call_context = AllocSetContextCreate(context,
											   "test_shm_mq_ext ring queues",
											   ALLOCSET_SMALL_SIZES);
	ring->queue_size = (Size) queue_size;
	ring->nworkers = nworkers;
	test_shm_mq_wait_settings_now(&ring->wait, strategy);
	ring->segment_size = segment_size;
	ring->ring_number = next_ring_number++;
	ring->owner_role = GetUserId();
	return ring;
}

/*
 * Allocate the shared header, the segment's first chunk, fill in every
 * field, and insert it.
 */
static void
init_header(test_shm_mq_ring *ring)
{
	int			nworkers = ring->nworkers;
	test_shm_mq_header *header;

	header = shm_toc_allocate(ring->toc, header_size(nworkers));
	SpinLockInit(&header->mutex);
	header->workers_total = nworkers;
	header->leader_pid = MyProcPid;
	header->leader = MyProc;
	header->ring_number = ring->ring_number;
	test_shm_mq_wait_shared_init(&header->wait, &ring->wait);
	pg_atomic_init_u64(&header->call_number, 0);
	pg_atomic_init_u32(&header->state, TEST_SHM_MQ_RING_OPEN);
	header->ready_workers = 0;
	header->lost_worker = 0;
	memset(header->workers, 0,
		   mul_size(nworkers, sizeof(test_shm_mq_worker_process)));
	shm_toc_insert(ring->toc, TEST_SHM_MQ_KEY_HEADER, header);
	ring->header = header;
}

/*
 * Create the nworkers + 1 data queues, then one error queue per worker,
 * setting the leader's ends.
 */
static void
create_queues(test_shm_mq_ring *ring)
{
	int			nworkers = ring->nworkers;
	int			queue;
	int			worker;

	for (queue = 0; queue <= nworkers; queue++)
	{
		shm_mq	   *mq;

		mq = shm_mq_create(shm_toc_allocate(ring->toc, ring->queue_size),
						   ring->queue_size);

		/*
		 * The leader writes the first queue and reads the last; with no
		 * workers, that is one queue and the leader talks to itself.
		 */
		if (queue == 0)
			shm_mq_set_sender(mq, MyProc);
		if (queue == nworkers)
			shm_mq_set_receiver(mq, MyProc);
		shm_toc_insert(ring->toc, TEST_SHM_MQ_KEY_DATA_QUEUE(queue), mq);
	}

	for (worker = 1; worker <= nworkers; worker++)
	{
		shm_mq	   *mq;

		mq = shm_mq_create(shm_toc_allocate(ring->toc,
											TEST_SHM_MQ_ERROR_QUEUE_SIZE),
						   TEST_SHM_MQ_ERROR_QUEUE_SIZE);
		shm_mq_set_receiver(mq, MyProc);
		shm_toc_insert(ring->toc,
					   TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, worker), mq);
	}
}

/*
 * Set aside the last chunk for the dynamic shared memory area of any call
 * that sends by reference; the call creates the area in it (area.c).
 */
static void
create_area(test_shm_mq_ring *ring)
{
	shm_toc_insert(ring->toc, TEST_SHM_MQ_KEY_AREA(ring->nworkers),
				   shm_toc_allocate(ring->toc, test_shm_mq_area_size()));
}

/*
 * Set aside the chunk in which each process of the ring has its wait slot
 * (wait.h).
 */
static void
create_wait_slots(test_shm_mq_ring *ring)
{
	int			nprocesses = ring->nworkers + 1;
	void	   *chunk;

	chunk = shm_toc_allocate(ring->toc, test_shm_mq_wait_slots_size(nprocesses));
	test_shm_mq_wait_slots_init(chunk, nprocesses);
	shm_toc_insert(ring->toc, TEST_SHM_MQ_KEY_WAIT_SLOTS(ring->nworkers),
				   chunk);
}
