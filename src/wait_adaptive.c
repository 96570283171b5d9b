/*-------------------------------------------------------------------------
 *
 * wait_adaptive.c
 *		The "adaptive" wait strategy: poll first, and sleep on the latch as
 *		"block" does once polling stops paying off.
 *
 * Its rules, how to poll and for how long, are wait_policy.c's, which also
 * says what they make a ring of N processes on C CPUs do.  This file gives
 * them a clock (instr_time), the latch, the scheduler (pg_spin_delay() to
 * spin, sched_yield() to yield), and the ring's shared hint: until when, on
 * the system clock, the whole ring sleeps at once because one of its
 * processes found the CPUs busy.  The hint is a deadline shared between
 * processes, so it is a TimestampTz: instr_time is only comparable within
 * one process.  A peer that moves data through our queues sets our latch;
 * since we are not sleeping while we poll, its SetLatch() costs it no system
 * call.
 *
 * IDENTIFICATION
 *		src/wait_adaptive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sched.h>

#include "miscadmin.h"
#include "port/atomics.h"
#include "portability/instr_time.h"
#include "storage/latch.h"

#include "wait.h"
#include "wait_policy.h"

/*
 * Spinning, look at the clock every this many polls: a pause is a few dozen
 * nanoseconds, a clock read about as much, so the clock costs a few percent
 * of a poll while a look still comes every microsecond or so, well within
 * the shortest budget worth having.  Yielding, every poll is a system call,
 * and we look each time.
 */
#define SPIN_POLLS_PER_CLOCK_READ	16

/* One process's adaptive waiting on one ring. */
typedef struct adaptive_state
{
	test_shm_mq_wait_policy policy;
	bool		leader;			/* the ring's scout: see wait_policy.c */
	uint32		polls;			/* spinning: polls since we last looked at
								 * the clock */
} adaptive_state;

static void adaptive_init(test_shm_mq_waiter *waiter, int nprocesses,
						  bool leader);
static bool adaptive_wait(test_shm_mq_waiter *waiter,
						  test_shm_mq_wait_event event);
static bool begin_wait(test_shm_mq_waiter *waiter, adaptive_state *state);
static bool poll_once(test_shm_mq_waiter *waiter, adaptive_state *state);
static void adaptive_progress(test_shm_mq_waiter *waiter);
static bool adaptive_would_sleep(test_shm_mq_waiter *waiter);
static test_shm_mq_ring_sleep ring_sleep(test_shm_mq_waiter *waiter,
										 bool leader);
static int64 now_us(void);

const test_shm_mq_wait_method test_shm_mq_adaptive_method = {
	.name = "adaptive",
	.batches = true,
	.init = adaptive_init,
	.wait = adaptive_wait,
	.progress = adaptive_progress,
	.would_sleep = adaptive_would_sleep,
};

/*
 * Prepare the rules for one process of the ring.
 */
static void
adaptive_init(test_shm_mq_waiter *waiter, int nprocesses, bool leader)
{
	adaptive_state *state = palloc0(sizeof(adaptive_state));

	test_shm_mq_policy_init(&state->policy, waiter->shared->spin_budget_us,
							nprocesses, waiter->shared->online_cpus, leader);
	state->leader = leader;
	waiter->private_state = state;
}

/*
 * Poll once, or sleep, as the rules say.
 */
static bool
adaptive_wait(test_shm_mq_waiter *waiter, test_shm_mq_wait_event event)
{
	adaptive_state *state = (adaptive_state *) waiter->private_state;
	test_shm_mq_wait_policy *policy = &state->policy;

	if (test_shm_mq_policy_would_sleep(policy))
	{
		if (!policy->waiting)
			test_shm_mq_policy_sleeping(policy, now_us());
		test_shm_mq_waiter_sleep(waiter, event);
		return true;
	}

	if (!policy->waiting)
	{
		if (!begin_wait(waiter, state))
		{
			/* The ring found the CPUs busy: sleep at once. */
			test_shm_mq_waiter_sleep(waiter, event);
			return true;
		}
		CHECK_FOR_INTERRUPTS();
		return false;
	}

	(void) poll_once(waiter, state);
	CHECK_FOR_INTERRUPTS();
	return false;
}

/*
 * The first pass without progress: begin a wait, by polling unless the
 * ring sleeps at once.  Returns whether we poll.
 */
static bool
begin_wait(test_shm_mq_waiter *waiter, adaptive_state *state)
{
	if (!test_shm_mq_policy_begin(&state->policy, now_us(),
								  ring_sleep(waiter, state->leader)))
		return false;

	/* The reset latch records the next thing a peer does to our queues. */
	state->polls = 0;
	ResetLatch(MyLatch);
	return true;
}

/*
 * One poll of a wait under way: spin or yield, looking at the clock as
 * often as the rules need it.  Returns false once polling gives up, having
 * reset the latch, so that the caller looks at its queues once more before
 * the next wait sleeps and a wake-up sent while we polled is not lost.
 */
static bool
poll_once(test_shm_mq_waiter *waiter, adaptive_state *state)
{
	test_shm_mq_wait_policy *policy = &state->policy;
	bool		yields = test_shm_mq_policy_yields(policy);
	int64		now;

	if (!yields && ++state->polls % SPIN_POLLS_PER_CLOCK_READ != 0)
	{
		pg_spin_delay();
		return true;
	}

	now = now_us();
	switch (test_shm_mq_policy_look(policy, now, MyLatch->is_set))
	{
		case TEST_SHM_MQ_POLL_ON:
			break;
		case TEST_SHM_MQ_POLL_NEW_ROUND:
			ResetLatch(MyLatch);
			break;
		case TEST_SHM_MQ_POLL_GIVE_UP:
			ResetLatch(MyLatch);
			return false;
	}

	if (test_shm_mq_policy_yields(policy))
	{
		int64		took;

		sched_yield();
		took = now_us() - now;
		waiter->counts->yields++;
		if (test_shm_mq_policy_yielded(policy, took))
			waiter->counts->contended_yields++;
	}
	else
		pg_spin_delay();
	return true;
}

/*
 * A pass made progress: learn from the wait that ended, and pass on to the
 * ring what the rules say it should know.
 */
static void
adaptive_progress(test_shm_mq_waiter *waiter)
{
	adaptive_state *state = (adaptive_state *) waiter->private_state;
	test_shm_mq_wait_policy *policy = &state->policy;
	int64		ring_sleep_us;

	if (!policy->waiting)
		return;

	/*
	 * A wait that polled through, undisturbed, needs no time to learn from,
	 * and this is every message's path: save the clock read.
	 */
	ring_sleep_us = test_shm_mq_policy_progress(policy,
												test_shm_mq_policy_progress_needs_time(policy) ?
												now_us() : 0);
	if (ring_sleep_us == TEST_SHM_MQ_RING_UNCHANGED)
		return;
	if (ring_sleep_us > 0)
		waiter->counts->ring_sleeps++;
	pg_atomic_write_u64(&waiter->shared->hint,
						ring_sleep_us == 0 ? 0 :
						(uint64) (GetCurrentTimestamp() + ring_sleep_us));
}

/*
 * Would the next wait sleep rather than poll?
 */
static bool
adaptive_would_sleep(test_shm_mq_waiter *waiter)
{
	adaptive_state *state = (adaptive_state *) waiter->private_state;

	return test_shm_mq_policy_would_sleep(&state->policy);
}

/*
 * What the ring's hint says of its sleeping: whether its processes sleep at
 * once, and, for the leader, the ring's scout, whether that has lasted long
 * enough to try polling again.  Only the leader needs the system clock.
 */
static test_shm_mq_ring_sleep
ring_sleep(test_shm_mq_waiter *waiter, bool leader)
{
	TimestampTz until = (TimestampTz) pg_atomic_read_u64(&waiter->shared->hint);

	if (until == 0)
		return TEST_SHM_MQ_RING_POLLS;
	if (!leader || GetCurrentTimestamp() < until)
		return TEST_SHM_MQ_RING_SLEEPS;
	return TEST_SHM_MQ_RING_SLEPT_ENOUGH;
}

/*
 * The time now, in microseconds on a clock that only goes forward, for
 * intervals measured within this process.
 */
static int64
now_us(void)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	return (int64) INSTR_TIME_GET_MICROSEC(now);
}
