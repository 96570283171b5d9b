/*-------------------------------------------------------------------------
 *
 * wait.h
 *		How a ring process waits when a pass over its queues made no
 *		progress: the wait strategy interface, and the sleep every other wait
 *		of ours goes through.
 *
 * A wait strategy is a test_shm_mq_wait_method: a name, whether it batches,
 * and four calls.  "block" (wait.c) sleeps on the latch at once, as shm_mq's
 * own blocking calls do; "adaptive" (wait_adaptive.c) polls first.  A loop
 * that drives its queues without blocking calls test_shm_mq_wait() each time
 * a pass over them made no progress, and test_shm_mq_waiter_progress() each
 * time one did; that is all it knows of the strategy.
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

/* The strategies, by test_shm_mq_ext.wait_strategy's values. */
typedef enum test_shm_mq_wait_strategy
{
	TEST_SHM_MQ_WAIT_BLOCK,		/* sleep on the latch at once */
	TEST_SHM_MQ_WAIT_ADAPTIVE	/* poll for a bounded time, then sleep */
} test_shm_mq_wait_strategy;

#define TEST_SHM_MQ_WAIT_STRATEGIES (TEST_SHM_MQ_WAIT_ADAPTIVE + 1)

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
 * What a ring's processes wait by, fixed as the ring is made: its strategy,
 * and the settings the strategy reads.  A kept ring serves only calls that
 * would make it the same (keep.c).
 */
typedef struct test_shm_mq_wait_settings
{
	test_shm_mq_wait_strategy strategy;
	int			spin_budget_us; /* test_shm_mq_ext.spin_budget_us, for the
								 * strategies that poll */
} test_shm_mq_wait_settings;

/*
 * What a ring's wait strategy shares between the ring's processes, in the
 * ring's header.  The leader fills it in before any worker starts, with
 * test_shm_mq_wait_shared_init(); after that only hint changes, and only the
 * strategy reads or writes it.
 */
typedef struct test_shm_mq_wait_shared
{
	int			strategy;		/* [L] test_shm_mq_wait_strategy */
	int			spin_budget_us; /* [L] test_shm_mq_ext.spin_budget_us, for
								 * the strategies that poll */
	int			online_cpus;	/* [L] as the leader found: 0 if unknown */
	pg_atomic_uint64 hint;		/* [L/W] the strategy's own word, read and
								 * written without a lock (adaptive: until
								 * when the whole ring sleeps at once) */
} test_shm_mq_wait_shared;

/*
 * What one process's waits came to, counted as they happen.  Each process
 * of a ring counts in a slot of its own in the ring's segment (below), so
 * that the leader can read them all (test_shm_mq_bench) and counting costs
 * no process a shared cache line.
 */
typedef struct test_shm_mq_wait_counts
{
	uint64		waits;			/* waits begun: passes without progress
								 * after one with */
	uint64		polled;			/* ... that ended without sleeping */
	uint64		slept;			/* sleeps on the latch */
	uint64		yields;			/* polls that yielded the CPU */
	uint64		contended_yields;	/* ... and found it wanted elsewhere */
	uint64		ring_sleeps;	/* times this process told the whole ring
								 * to sleep at once */
} test_shm_mq_wait_counts;

#define TEST_SHM_MQ_WAIT_COUNTS (sizeof(test_shm_mq_wait_counts) / sizeof(uint64))

/*
 * One process's slot in the ring's segment: its wait counts, and whether it
 * sleeps on its latch now, for its sender to see (relay.c).  Written only by
 * its process; a cache line apart from every other slot.
 */
typedef struct test_shm_mq_wait_slot
{
	test_shm_mq_wait_counts counts;
	pg_atomic_uint32 asleep;	/* 1 while it sleeps on its latch */
} test_shm_mq_wait_slot;

typedef struct test_shm_mq_waiter test_shm_mq_waiter;

/*
 * A wait strategy.
 *
 * init prepares one process's waiter for a ring of nprocesses processes,
 * the leader included; leader says whether that process is the ring's
 * leader.  It may allocate its private state in CurrentMemoryContext, which
 * must outlive the waiter.
 *
 * wait is called each time a pass over the queues made no progress, and
 * returns once a peer may have made progress possible: true if it slept on
 * the latch, which is also when the caller should look at anything that can
 * wake it other than its queues; false if it only polled.  It services
 * interrupts either way.
 *
 * progress is called after a wait, once a pass made progress again.
 *
 * would_sleep says whether the next wait would sleep rather than poll.
 *
 * batches says whether the ring's processes hold flushes back while more
 * data is at hand, and move messages in bursts (relay.c, messages.c).
 */
typedef struct test_shm_mq_wait_method
{
	const char *name;
	bool		batches;
	void		(*init) (test_shm_mq_waiter *waiter, int nprocesses,
						 bool leader);
	bool		(*wait) (test_shm_mq_waiter *waiter,
						 test_shm_mq_wait_event event);
	void		(*progress) (test_shm_mq_waiter *waiter);
	bool		(*would_sleep) (test_shm_mq_waiter *waiter);
} test_shm_mq_wait_method;

/* One process's waiting on one ring. */
struct test_shm_mq_waiter
{
	const test_shm_mq_wait_method *method;
	test_shm_mq_wait_shared *shared;	/* the ring's, in its header */
	test_shm_mq_wait_slot *slot;	/* this process's, in the segment */
	test_shm_mq_wait_counts *counts;	/* ... its counts */
	bool		waiting;		/* a pass made no progress since the last
								 * that did */
	bool		slept;			/* ... and the wait has slept */
	void	   *private_state;	/* the strategy's own */
};

/* The strategies (wait.c, wait_adaptive.c). */
extern const test_shm_mq_wait_method test_shm_mq_block_method;
extern const test_shm_mq_wait_method test_shm_mq_adaptive_method;
extern const struct config_enum_entry test_shm_mq_wait_strategies[];

extern void test_shm_mq_init_wait_events(void);
extern uint32 test_shm_mq_wait_event_info(test_shm_mq_wait_event event);
extern test_shm_mq_wait_strategy test_shm_mq_parse_wait_strategy(const char *name);
extern const char *test_shm_mq_wait_strategy_name(test_shm_mq_wait_strategy strategy);
extern void test_shm_mq_wait_settings_now(test_shm_mq_wait_settings *settings,
										  test_shm_mq_wait_strategy strategy);
extern bool test_shm_mq_wait_settings_equal(const test_shm_mq_wait_settings *a,
											const test_shm_mq_wait_settings *b);
extern void test_shm_mq_wait_shared_init(test_shm_mq_wait_shared *shared,
										 const test_shm_mq_wait_settings *settings);
extern Size test_shm_mq_wait_slots_size(int nprocesses);
extern void test_shm_mq_wait_slots_init(void *chunk, int nprocesses);
extern test_shm_mq_wait_slot *test_shm_mq_wait_slot_of(void *chunk,
													   int process);
extern void test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
									test_shm_mq_wait_shared *shared,
									test_shm_mq_wait_slot *slot,
									int nprocesses, bool leader);
extern void test_shm_mq_waiter_sleep(test_shm_mq_waiter *waiter,
									 test_shm_mq_wait_event event);
extern void test_shm_mq_sleep(test_shm_mq_wait_event event, long timeout_ms);

/*
 * Wait until a peer may have made progress possible; see
 * test_shm_mq_wait_method.wait.
 */
static inline bool
test_shm_mq_wait(test_shm_mq_waiter *waiter, test_shm_mq_wait_event event)
{
	if (!waiter->waiting)
	{
		waiter->waiting = true;
		waiter->slept = false;
		waiter->counts->waits++;
	}
	if (!waiter->method->wait(waiter, event))
		return false;
	waiter->slept = true;
	waiter->counts->slept++;
	return true;
}

/*
 * Tell the waiter that the last pass over the queues made progress.  Free
 * when it did not wait, which is every message but the first of a burst.
 */
static inline void
test_shm_mq_waiter_progress(test_shm_mq_waiter *waiter)
{
	if (waiter->waiting)
	{
		waiter->waiting = false;
		if (!waiter->slept)
			waiter->counts->polled++;
		waiter->method->progress(waiter);
	}
}

/* Would the next test_shm_mq_wait() sleep on the latch, rather than poll? */
static inline bool
test_shm_mq_wait_would_sleep(test_shm_mq_waiter *waiter)
{
	return waiter->method->would_sleep(waiter);
}

/* Does this process batch?  See test_shm_mq_wait_method.batches. */
static inline bool
test_shm_mq_waiter_batches(const test_shm_mq_waiter *waiter)
{
	return waiter->method->batches;
}

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

#endif							/* TEST_SHM_MQ_EXT_WAIT_H */
