/*-------------------------------------------------------------------------
 *
 * test_shm_mq.c
 *		SQL functions that send a message round a ring of workers:
 *		test_shm_mq() one trip at a time, test_shm_mq_pipelined() with many
 *		copies in flight; and test_shm_mq_release_ring(), which takes down
 *		the ring they may have kept.
 *
 * The first two keep the names, arguments and behaviour of PostgreSQL's own
 * src/test/modules/test_shm_mq, so either module can stand in for the other.
 * With test_shm_mq_ext.ring_keepalive set, a call may use the ring the
 * previous one kept, and keep it in turn.
 *
 * IDENTIFICATION
 *		src/test_shm_mq.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "keep.h"

PG_FUNCTION_INFO_V1(test_shm_mq);
PG_FUNCTION_INFO_V1(test_shm_mq_pipelined);
PG_FUNCTION_INFO_V1(test_shm_mq_release_ring);

/*
 * test_shm_mq(queue_size int8, message text, repeat_count int4,
 *			   num_workers int4) returns void
 *
 * The leader sends with blocking semantics and so needs at least one worker
 * to talk to.
 */
Datum
test_shm_mq(PG_FUNCTION_ARGS)
{
	int64		queue_size = PG_GETARG_INT64(0);
	text	   *message = PG_GETARG_TEXT_PP(1);
	int32		repeat_count = PG_GETARG_INT32(2);
	int32		nworkers = PG_GETARG_INT32(3);
	test_shm_mq_ring *ring;

	test_shm_mq_check_repeat_count(repeat_count);
	test_shm_mq_check_worker_count(nworkers, 1);

	ring = test_shm_mq_ring_acquire(queue_size, nworkers,
									test_shm_mq_default_wait_strategy);
	test_shm_mq_ping_pong(ring, VARSIZE_ANY_EXHDR(message),
						  VARDATA_ANY(message), repeat_count);
	test_shm_mq_ring_done(ring, fcinfo->flinfo->fn_oid);

	PG_RETURN_VOID();
}

/*
 * test_shm_mq_pipelined(queue_size int8, message text, repeat_count int4,
 *						 num_workers int4, verify bool) returns void
 *
 * With no workers the leader's single queue loops back to itself.
 */
Datum
test_shm_mq_pipelined(PG_FUNCTION_ARGS)
{
	int64		queue_size = PG_GETARG_INT64(0);
	text	   *message = PG_GETARG_TEXT_PP(1);
	int32		repeat_count = PG_GETARG_INT32(2);
	int32		nworkers = PG_GETARG_INT32(3);
	bool		verify = PG_GETARG_BOOL(4);
	test_shm_mq_ring *ring;

	test_shm_mq_check_repeat_count(repeat_count);
	test_shm_mq_check_worker_count(nworkers, 0);

	ring = test_shm_mq_ring_acquire(queue_size, nworkers,
									test_shm_mq_default_wait_strategy);
	test_shm_mq_pipeline(ring, VARSIZE_ANY_EXHDR(message),
						 VARDATA_ANY(message), repeat_count, verify);
	test_shm_mq_ring_done(ring, fcinfo->flinfo->fn_oid);

	PG_RETURN_VOID();
}

/*
 * test_shm_mq_release_ring() returns bool
 *
 * Takes down the ring this session keeps, if any, and says whether there
 * was one.
 */
Datum
test_shm_mq_release_ring(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(test_shm_mq_keep_release());
}
