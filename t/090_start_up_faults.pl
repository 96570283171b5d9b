
# 090_start_up_faults.pl
#
# Proves that faults while a ring is still starting are handled as promptly
# as faults in a running ring.  To hold the workers in start-up, another
# session locks pg_authid, which a worker must read to connect; the workers
# then wait for that lock, inside InitPostgres(), and the leader waits for
# them to become ready.  While they wait:
#
#  - SIGTERM to a starting worker fails the call with "one or more workers
#    failed to start", the worker's own reason in the detail;
#  - a cancel (SIGINT, as pg_cancel_backend() sends) or statement_timeout
#    fails the call with the usual message;
#  - a terminate (SIGTERM to the leader, as pg_terminate_backend() sends)
#    ends the session;
#
# each within a second, and in each case the starting workers, still stuck on
# the lock, are terminated by the leader and exit without waiting for it.
# Once the lock is released, no worker process and no segment of ours is
# left.  The signals are sent from the test itself because while pg_authid is
# locked, no new session can connect.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# The statement timeout leaves the workers ample time to reach the lock,
# which they do within milliseconds, so that it too strikes while they wait.
my $nworkers             = 2;
my $statement_timeout_ms = 2000;

# Workers connect as they start, before they are ready, so that a lock on
# pg_authid holds them there.
my $node = new_node('start_up_faults',
	conf => ['test_shm_mq_ext.worker_connect_delay = 0']);
my $segments_before = dsm_segments($node);

my %faults = (
	'SIGTERM to starting worker 1' => {
		severity => 'ERROR',
		sqlstate => '57P01',
		message  => 'one or more workers failed to start',
		detail   =>
		  "Worker 1 of $nworkers reported: terminating background worker \"test_shm_mq_ext\" due to administrator command.",
		context => qr/^test_shm_mq_ext worker 1 of $nworkers, PID (\d+)$/, },
	'cancel of the leader' => {
		severity => 'ERROR',
		sqlstate => '57014',
		message  => 'canceling statement due to user request', },
	'statement_timeout' => {
		severity => 'ERROR',
		sqlstate => '57014',
		message  => 'canceling statement due to statement timeout', },
	'terminate of the leader' => {
		severity => 'FATAL',
		sqlstate => '57P01',
		message  => 'terminating connection due to administrator command', },
);

foreach my $fault_name (sort keys %faults)
{
	my $fault = $faults{$fault_name};
	my $label = "ring starting, $fault_name";

	# Connect the sessions, and warm the leader's caches with one call,
	# before the lock keeps anyone from reading pg_authid.
	my $leader     = TestShmMq::Session->new($node);
	my $locker     = TestShmMq::Session->new($node);
	my $leader_pid = $leader->pid;
	is( $leader->query("SELECT test_shm_mq(1024, 'x', 1, $nworkers)")
		  ->{stderr},
		'', "$label: a call works before the lock");
	$leader->query("SET statement_timeout = $statement_timeout_ms")
	  if $fault_name eq 'statement_timeout';

	$locker->query('BEGIN');
	$locker->query('LOCK TABLE pg_authid IN ACCESS EXCLUSIVE MODE');
	my $sent_at =
	  $leader->send("SELECT test_shm_mq(1024, 'x', 1, $nworkers)");

	# The workers show up in ps as soon as they are started.  Each look at
	# the leader's session notes the moment its call ends, should it end
	# while we wait here.
	my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
	my @workers;
	while (1)
	{
		@workers = worker_processes($node, $leader_pid);
		last
		  if @workers == $nworkers
		  || !$leader->running
		  || now() > $deadline;
		pause(0.02);
	}
	is(scalar @workers, $nworkers, "$label: the workers were started");
	my %worker_pid =
	  map { /^(\d+) .*worker (\d+) of/ ? ($2 => $1) : () } @workers;

	# Let them reach the lock, as the locker sees in pg_locks; the call must
	# still be waiting for them.
	my $waiting;
	$deadline = now() + $TestShmMq::SETTLE_SECONDS;
	while (1)
	{
		$waiting = $locker->query(
			q{SELECT count(*) FROM pg_locks
			WHERE relation = 'pg_authid'::regclass AND NOT granted})->{stdout};
		last
		  if $waiting == $nworkers
		  || !$leader->running
		  || now() > $deadline;
		pause(0.02);
	}
	is($waiting, $nworkers, "$label: the workers wait for the lock on pg_authid");
	ok($leader->running, "$label: the call waits for its workers");

	my $fault_at;
	if ($fault_name eq 'SIGTERM to starting worker 1')
	{
		$fault_at = now();
		kill 'TERM', $worker_pid{1};
	}
	elsif ($fault_name eq 'cancel of the leader')
	{
		$fault_at = now();
		kill 'INT', $leader_pid;
	}
	elsif ($fault_name eq 'terminate of the leader')
	{
		$fault_at = now();
		kill 'TERM', $leader_pid;
	}
	else
	{
		$fault_at = $sent_at + $statement_timeout_ms / 1000;
	}

	my $result = $leader->wait_result(timeout => 30);
	my $error  = parse_error($result->{stderr}) // {};

	ok($result->{finished}, "$label: the call ended");
	is($error->{severity}, $fault->{severity}, "$label: $fault->{severity}");
	is($error->{sqlstate}, $fault->{sqlstate},
		"$label: SQLSTATE $fault->{sqlstate}");
	is($error->{message}, $fault->{message}, "$label: message");
	if (defined $fault->{detail})
	{
		is($error->{detail}, $fault->{detail}, "$label: detail");
		like($error->{context} // '', $fault->{context}, "$label: context");
		my ($pid) = ($error->{context} // '') =~ $fault->{context};
		is($pid, $worker_pid{1},
			"$label: the context names the worker's PID");
	}
	check_time_to_error($label, $fault_at, $result->{error_at});

	# While the lock is still held, the stuck workers must go.  Timed by
	# their PIDs in /proc, which is cheaper than ps.
	$deadline = now() + $TestShmMq::SETTLE_SECONDS;
	pause(0.002)
	  while (grep { !process_gone($_) } values %worker_pid)
	  && now() < $deadline;
	my $gone_at = now();
	my @left    = grep { !process_gone($_) } values %worker_pid;
	is_deeply(\@left, [],
		"$label: the starting workers exited while still waiting to connect");
	check_time_to_error("$label, until the starting workers exited",
		$fault_at, @left ? undef : $gone_at);
	is_deeply([ worker_processes($node, $leader_pid) ],
		[], "$label: no worker of the call in the OS process list");

	$locker->query('COMMIT');
	$locker->close;
	$leader->close;
	check_no_leftovers($node, $segments_before, $label);
}

$node->stop;
done_testing();
