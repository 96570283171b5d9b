/*-------------------------------------------------------------------------
 *
 * wait_policy.h
 *		The adaptive wait strategy's rules, apart from any clock, latch or
 *		scheduler: when to poll, how, for how long, and what to learn from
 *		each wait.
 *
 * Everything here is a pure function of the times it is given, so the same
 * rules drive the ring's processes (src/wait.c) and the model that predicts
 * how a ring of N processes behaves on C CPUs (t/model/ring_model.c).  See
 * wait_policy.c for the rules themselves.
 *
 * IDENTIFICATION
 *		src/wait_policy.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_WAIT_POLICY_H
#define TEST_SHM_MQ_EXT_WAIT_POLICY_H

/*
 * A poll that is kept off its CPU this long (or, spinning, a gap this long
 * between two looks at the clock) means another process had real work for
 * that CPU.
 */
#define TEST_SHM_MQ_CONTENDED_US	50

/* test_shm_mq_policy_progress(): leave the ring's sleeping as it is. */
#define TEST_SHM_MQ_RING_UNCHANGED	(-1)

/* What the ring's shared hint says, as a process begins a wait. */
typedef enum test_shm_mq_ring_sleep
{
	TEST_SHM_MQ_RING_POLLS,		/* no process has found the CPUs busy */
	TEST_SHM_MQ_RING_SLEEPS,	/* one has: every process sleeps at once */
	TEST_SHM_MQ_RING_SLEPT_ENOUGH	/* ... for long enough that the scout
									 * may try polling again */
} test_shm_mq_ring_sleep;

/* What a polling process should do after its latest look at the clock. */
typedef enum test_shm_mq_poll_verdict
{
	TEST_SHM_MQ_POLL_ON,		/* poll again */
	TEST_SHM_MQ_POLL_NEW_ROUND, /* a peer touched our queues: reset the
								 * latch, and poll on */
	TEST_SHM_MQ_POLL_GIVE_UP	/* reset the latch, look at the queues once
								 * more, then sleep */
} test_shm_mq_poll_verdict;

/*
 * One process's adaptive waiting for one ring.  Times are in microseconds
 * on any clock that only goes forward.
 */
typedef struct test_shm_mq_wait_policy
{
	/* Fixed for the ring. */
	bool		short_of_cpus;	/* more processes than CPUs: poll by
								 * yielding the CPU, never by spinning */
	bool		scout;			/* the leader: the one that tries polling
								 * again while the ring sleeps at once */
	int64		ceiling_us;		/* the longest any wait polls */

	/* Learnt from the waits so far. */
	int64		budget_us;		/* how long the next wait polls */
	int			yield_waits;	/* after a preempted spin: waits that poll
								 * by yielding */
	int			yield_backoff;	/* ... and how many after the next one */
	int			sleep_waits;	/* after a contended wait: waits that sleep
								 * at once */
	int			sleep_backoff;	/* ... and how many after the next one */
	int			contended_waits;	/* waits in a row that a yield found the
									 * CPUs busy in */
	int64		sleep_for_us;	/* after the next contended wait, how long
								 * the ring sleeps at once */

	/* The wait under way, if any. */
	bool		waiting;		/* a wait began since the last progress */
	bool		polling;		/* ... and polls now */
	bool		spinning;		/* ... by spinning, undisturbed so far */
	bool		slept;			/* ... and gave up polling at least once */
	bool		ring_asleep;	/* ... and slept at once, the ring's CPUs
								 * being busy */
	bool		scouting;		/* ... and polls to see whether they still
								 * are */
	bool		contended;		/* a yield found the CPU wanted */
	int64		wait_start;		/* when the wait began */
	int64		round_start;	/* when this round of polling began */
	int64		last_look;		/* when we last looked at the clock */
} test_shm_mq_wait_policy;

extern void test_shm_mq_policy_init(test_shm_mq_wait_policy *policy,
									int budget_per_process_us,
									int nprocesses, int ncpus, bool scout);
extern bool test_shm_mq_policy_would_sleep(const test_shm_mq_wait_policy *policy);
extern bool test_shm_mq_policy_yields(const test_shm_mq_wait_policy *policy);
extern bool test_shm_mq_policy_begin(test_shm_mq_wait_policy *policy,
									 int64 now, test_shm_mq_ring_sleep ring);
extern void test_shm_mq_policy_sleeping(test_shm_mq_wait_policy *policy,
										int64 now);
extern test_shm_mq_poll_verdict test_shm_mq_policy_look(test_shm_mq_wait_policy *policy,
														int64 now,
														bool latch_set);
extern bool test_shm_mq_policy_yielded(test_shm_mq_wait_policy *policy,
									   int64 took);
extern bool test_shm_mq_policy_progress_needs_time(const test_shm_mq_wait_policy *policy);
extern int64 test_shm_mq_policy_progress(test_shm_mq_wait_policy *policy,
										 int64 now);

#endif							/* TEST_SHM_MQ_EXT_WAIT_POLICY_H */
