/*-------------------------------------------------------------------------
 *
 * wait.h
 *		How leader and workers wait when a queue can make no progress.
 *
 * IDENTIFICATION
 *		src/wait.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_WAIT_H
#define TEST_SHM_MQ_EXT_WAIT_H

#include "port/atomics.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "test_shm_mq_ext.h"
#include "wait_policy.h"

/*
 * What a ring process waits for when it sleeps.  From PostgreSQL 17 on each
 * has its own name in pg_stat_activity.wait_event; before, all show as
 * "Extension".
 */
typedef enum test_shm_mq_wait_event
{
	TEST_SHM_MQ_WAIT_EVENT_WORKER_STARTUP,	/* leader: workers to be ready */
	TEST_SHM_MQ_WAIT_EVENT_SEND,	/* room in the queue we send to */
	TEST_SHM_MQ_WAIT_EVENT_RECEIVE, /* a message in the queue we read */
	TEST_SHM_MQ_WAIT_EVENT_KEPT,	/* worker: the next call of a kept ring */
	TEST_SHM_MQ_WAIT_EVENT_SLOT,	/* leader: a free worker slot */
	TEST_SHM_MQ_WAIT_EVENT_WORKER_EXIT, /* leader: workers to exit */
	TEST_SHM_MQ_WAIT_EVENT_BENCH_IDLE	/* leader: the bench's idle time */
} test_shm_mq_wait_event;

#define TEST_SHM_MQ_WAIT_EVENTS (TEST_SHM_MQ_WAIT_EVENT_BENCH_IDLE + 1)

/*
 * One process's waiting state for one ring.  A loop calls test_shm_mq_wait()
 * each time a pass over its queues made no progress, and
 * test_shm_mq_waiter_progress() each time one did.  The adaptive strategy's
 * rules are in wait_policy.c; this is their clock, latch and scheduler.
 */
typedef struct test_shm_mq_waiter
{
	test_shm_mq_wait_strategy strategy;
	test_shm_mq_wait_policy policy;
	uint32		polls;			/* spinning: polls since we last looked at
								 * the clock */
	pg_atomic_uint64 *sleep_until;	/* the ring's, in its header */
} test_shm_mq_waiter;

extern const struct config_enum_entry test_shm_mq_wait_strategies[];

extern void test_shm_mq_init_wait_events(void);
extern uint32 test_shm_mq_wait_event_info(test_shm_mq_wait_event event);
extern test_shm_mq_wait_strategy test_shm_mq_parse_wait_strategy(const char *name);
extern int	test_shm_mq_online_cpus(void);
extern void test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
									test_shm_mq_wait_strategy strategy,
									int spin_budget_us, int nprocesses,
									int ncpus, pg_atomic_uint64 *sleep_until,
									bool scout);
extern bool test_shm_mq_wait(test_shm_mq_waiter *waiter,
							 test_shm_mq_wait_event event);
extern void test_shm_mq_sleep(test_shm_mq_wait_event event, long timeout_ms);
extern bool test_shm_mq_wait_would_sleep(test_shm_mq_waiter *waiter);
extern void test_shm_mq_waiter_progress(test_shm_mq_waiter *waiter);

/*
 * Milliseconds since a time GetCurrentTimestamp() gave.
 *
 * A wait whose length we promise, in a setting or a message, is timed on the
 * system clock, as PostgreSQL's own timeouts are; instr_time is for
 * measuring, and on PostgreSQL 19 it counts CPU cycles at a calibrated rate,
 * which may run a few parts in ten thousand fast: enough for a 5 s wait to
 * end 2 ms early.
 */
static inline double
test_shm_mq_ms_since(TimestampTz start)
{
	return (double) (GetCurrentTimestamp() - start) / 1000.0;
}

/*
 * Whether a process batches: holds back flushes while more data is at hand,
 * and moves messages in bursts.  The "block" strategy keeps the reference
 * design, which flushes every message and moves one at a time.
 */
static inline bool
test_shm_mq_batching(test_shm_mq_wait_strategy strategy)
{
	return strategy != TEST_SHM_MQ_WAIT_BLOCK;
}

#endif							/* TEST_SHM_MQ_EXT_WAIT_H */
