
# 100_release_on_failure.pl
#
# Proves that a call that fails keeps the promise of one that succeeds: its
# error reaches the caller only once every worker the call registered has
# exited, or was withdrawn before it started.  So, looking once, at the moment
# the error arrives, without waiting:
#
#  - statement_timeout = 1ms over a few hundred calls through 4 workers: every
#    call fails with 57014, none for want of a worker slot, no worker of the
#    call is left in pg_stat_activity or in the OS process list, and the
#    server log gets no error from any worker;
#  - cancels at random moments of calls through 8 workers, from before the
#    first worker starts to after the ring is up: the same;
#  - the leader terminated at random moments of start-up: once it has exited,
#    so have its workers, within a second;
#  - a call that fails for want of slots, then at once one that fits: the
#    second succeeds, every time;
#
# and that the wait is bounded, whatever stands in its way:
#
#  - a worker that cannot run (stopped with SIGSTOP): the cancelled call
#    returns after about 5 s, with a WARNING naming the worker;
#  - a postmaster that can neither start nor withdraw workers (stopped): the
#    same, the WARNING saying the worker never started.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# The bounded wait of release.c, and how far past it a call may return.
my $exit_timeout_s = 5;
my $exit_slack_s   = 1.5;

my $timeout_calls   = 300;
my $cancel_calls    = 100;
my $terminate_calls = 20;
my $slot_rounds     = 50;

my $max_worker_processes = 16;

# The logical replication launcher holds one slot from startup on.
my $free_slots = $max_worker_processes - 1;

my $node =
  new_node('release_on_failure',
	max_worker_processes => $max_worker_processes);
my $segments_before = dsm_segments($node);
my $control         = TestShmMq::Session->new($node);
my $session         = TestShmMq::Session->new($node);

# The SQLSTATE a call ended with, or "ok".
sub outcome
{
	my ($result) = @_;
	my $error = parse_error($result->{stderr});

	return 'no end' unless $result->{finished};
	return defined $error ? $error->{sqlstate} : 'ok';
}

# What workers wrote to the server log since an offset: any error, and any
# exit the postmaster thought worth reporting.
sub worker_log_lines
{
	my ($offset) = @_;
	my $log = slurp_file($node->logfile, $offset);

	return grep {
		/could not map dynamic shared memory segment
		  |terminating\ background\ worker\ "test_shm_mq_ext"
		  |background\ worker\ "test_shm_mq_ext"\ \(PID\ \d+\)\ exited
		  |invalid\ magic\ number/x
	} split /\n/, $log;
}

# What a leader that has not exited in time is doing, then how long it took
# to exit after all, and what the server log said meanwhile: enough to tell
# a wait that went wrong from a machine that stalled.
sub stuck_leader
{
	my ($leader, $fault_at, $log_offset) = @_;
	my $proc = eval { slurp_file("/proc/$leader/stat") } // '';
	my ($state) = $proc =~ /\)\s+(\S)\s/;
	my $wchan = eval { slurp_file("/proc/$leader/wchan") } // '';
	my $activity = $control->query(
		"SELECT state || ', waiting on ' || coalesce(wait_event_type || '/' || wait_event, 'nothing')
		FROM pg_stat_activity WHERE pid = $leader")->{stdout};
	my $deadline = now() + 6 * $TestShmMq::SETTLE_SECONDS;

	pause(0.01) while !process_gone($leader) && now() < $deadline;
	return sprintf(
		"process state %s in %s, pg_stat_activity: %s; %s after %.0f ms; server log since the call:\n%s",
		$state // '?', $wchan || '?', $activity || '(no row)',
		process_gone($leader) ? 'exited' : 'still there',
		1000 * (now() - $fault_at), slurp_file($node->logfile, $log_offset));
}

sub median
{
	my @sorted = sort { $a <=> $b } @_;
	return $sorted[ int($#sorted / 2) ];
}

# Statement timeout of 1 ms: each call fails while its workers start.
{
	my $label      = "statement_timeout = 1ms, $timeout_calls calls";
	my $leader     = $session->pid;
	my $log_offset = -s $node->logfile;
	my (%outcomes, @left, @durations);

	$session->query("SET statement_timeout = '1ms'");
	foreach my $call (1 .. $timeout_calls)
	{
		my $result =
		  $session->query("SELECT test_shm_mq(1024, 'x', 100, 4)");
		my $outcome = outcome($result);

		$outcomes{$outcome}++;
		push @durations, $result->{done_at} - $result->{sent_at}
		  if $result->{finished};
		push @left, map { "after call $call ($outcome): $_" }
		  workers_seen($node, $control, $leader);
	}
	$session->query('RESET statement_timeout');

	note "$label [" . dsm_choice() . ']: outcomes '
	  . join(', ', map { "$_: $outcomes{$_}" } sort keys %outcomes);
	note sprintf(
		'time to error: %s [%s]: median %.1f ms, longest %.1f ms',
		$label, dsm_choice(),
		1000 * median(@durations),
		1000 * (sort { $b <=> $a } @durations)[0]);
	is($outcomes{53000} // 0, 0, "$label: no call failed for want of a slot");
	is(scalar(grep { $_ ne '57014' && $_ ne 'ok' } keys %outcomes),
		0, "$label: every call timed out or succeeded");
	cmp_ok($outcomes{57014} // 0,
		'>', $timeout_calls / 2, "$label: most calls timed out");
	is_deeply(\@left, [],
		"$label: no worker left when any call returned");
	is_deeply([ worker_log_lines($log_offset) ],
		[], "$label: no worker wrote an error to the server log");
	check_no_leftovers($node, $segments_before, $label);
}

# Cancels at random moments of calls through 8 workers.  A cancel that comes
# after the call returned finds the session idle and is ignored.
{
	my $label      = "pg_cancel_backend at random moments, $cancel_calls calls";
	my $leader     = $session->pid;
	my $log_offset = -s $node->logfile;
	my (%outcomes, @left, @setup);

	# How long a call takes, to spread the cancels over all of it.
	foreach (1 .. 5)
	{
		my $result = $session->query("SELECT test_shm_mq(1024, 'x', 1, 8)");
		is($result->{stderr}, '', "$label: an uncancelled call succeeds");
		push @setup, $result->{done_at} - $result->{sent_at};
	}
	my $span = 1.2 * median(@setup);
	note sprintf('a call through 8 workers takes %.1f ms', 1000 * median(@setup));

	foreach my $call (1 .. $cancel_calls)
	{
		$session->send("SELECT test_shm_mq(1024, 'x', 1, 8)");
		pause(rand($span));
		kill 'INT', $leader;
		my $result  = $session->wait_result;
		my $outcome = outcome($result);

		$outcomes{$outcome}++;
		push @left, map { "after call $call ($outcome): $_" }
		  workers_seen($node, $control, $leader);
	}

	note "$label [" . dsm_choice() . ']: outcomes '
	  . join(', ', map { "$_: $outcomes{$_}" } sort keys %outcomes);
	is(scalar(grep { $_ ne '57014' && $_ ne 'ok' } keys %outcomes),
		0, "$label: every call was cancelled or succeeded");
	cmp_ok($outcomes{57014} // 0,
		'>=', $cancel_calls / 4, "$label: many calls were cancelled");
	is_deeply(\@left, [],
		"$label: no worker left when any call returned");
	is_deeply([ worker_log_lines($log_offset) ],
		[], "$label: no worker wrote an error to the server log");
	check_no_leftovers($node, $segments_before, $label);
}

# The leader terminated at random moments of start-up: its exit waits for its
# workers, so when it is gone, they are.
{
	my $label = "pg_terminate_backend at random moments, $terminate_calls calls";
	my (@left, @slow, @exit_times);

	foreach my $call (1 .. $terminate_calls)
	{
		my $leader_session = TestShmMq::Session->new($node);
		my $leader         = $leader_session->pid;
		my $log_offset     = -s $node->logfile;

		$leader_session->send("SELECT test_shm_mq(1024, 'x', 1, 8)");
		pause(rand(0.02));
		my $fault_at = now();
		kill 'TERM', $leader;

		my $deadline = $fault_at + $TestShmMq::SETTLE_SECONDS;
		pause(0.001) while !process_gone($leader) && now() < $deadline;
		my $gone_at = now();
		if (!process_gone($leader))
		{
			push @slow,
			  "call $call: leader $leader did not exit: "
			  . stuck_leader($leader, $fault_at, $log_offset);
		}
		else
		{
			push @exit_times, $gone_at - $fault_at;
			push @slow,
			  sprintf('call %d: leader exited after %.0f ms',
				$call, 1000 * ($gone_at - $fault_at))
			  if $gone_at - $fault_at >= $TestShmMq::MAX_TIME_TO_ERROR;
		}
		push @left, map { "after call $call: $_" }
		  workers_seen($node, $control, $leader);
		$leader_session->close;
	}

	note sprintf(
		'time to error: %s, until the leader exited [%s]: median %.1f ms',
		$label, dsm_choice(), 1000 * median(@exit_times));
	is_deeply(\@slow, [], "$label: every leader exited within a second");
	is_deeply(\@left, [],
		"$label: no worker left once its leader had exited");
	check_no_leftovers($node, $segments_before, $label);
}

# A call that fails for want of slots frees the slots it took before it
# returns, so one that fits, made at once, gets them.
{
	my $label = "a ring of $free_slots right after one of "
	  . ($free_slots + 1)
	  . " failed, $slot_rounds times";
	my (%first, %second);

	foreach (1 .. $slot_rounds)
	{
		$first{ outcome(
				$session->query(
					"SELECT test_shm_mq(1024, 'x', 1, @{[ $free_slots + 1 ]})")
			) }++;
		$second{ outcome(
				$session->query(
					"SELECT test_shm_mq(1024, 'x', 1, $free_slots)")) }++;
	}
	is_deeply(\%first, { 53000 => $slot_rounds },
		"$label: the ring that does not fit fails for want of a slot");
	is_deeply(\%second, { ok => $slot_rounds },
		"$label: the ring that fits succeeds every time");
	check_no_leftovers($node, $segments_before, $label);
}

# A worker that cannot run: the call still returns, after the bounded wait,
# and says which worker it left behind.
{
	my $label  = 'a stopped worker';
	my $leader = $session->pid;

	$session->send("SELECT test_shm_mq(1024, 'x', 2000000000, 2)");
	my $workers = wait_for_ring($node, $leader, 2);
	kill 'STOP', $workers->{2};
	my $fault_at = now();
	kill 'INT', $leader;
	my $result = $session->wait_result;
	kill 'CONT', $workers->{2};

	is(outcome($result), '57014', "$label: the call was cancelled");
	like(
		$result->{stderr},
		qr/^WARNING:  01000: test_shm_mq_ext worker 2 of 2 did not exit within 5000 ms\nDETAIL:  Its process, PID $workers->{2}, has been told to terminate, and is left to exit on its own\.$/m,
		"$label: a WARNING names the worker and its PID");
	my $took = ($result->{error_at} // now()) - $fault_at;
	note sprintf('%s [%s]: the call returned after %.0f ms',
		$label, dsm_choice(), 1000 * $took);
	ok( $took >= $exit_timeout_s && $took < $exit_timeout_s + $exit_slack_s,
		"$label: the call returned after the bounded wait");
	ok(process_gone($workers->{1}), "$label: the other worker had exited");
	check_no_leftovers($node, $segments_before,
		"$label, once it runs again", settle => 1);
}

# A postmaster that can neither start nor withdraw the workers.  Sessions
# already connected go on working while it is stopped; new ones cannot
# connect, so everything here goes through those.
{
	my $label      = 'a stopped postmaster';
	my $leader     = $session->pid;
	my $postmaster = TestShmMq::postmaster_pid($node);
	my ($result, $waited, $fault_at);

	# Whatever happens, the postmaster must run again: also if this test is
	# interrupted meanwhile.
	local $SIG{INT} = local $SIG{TERM} = sub {
		kill 'CONT', $postmaster;
		die "interrupted while the postmaster was stopped\n";
	};
	kill 'STOP', $postmaster;
	eval {
		$session->send("SELECT test_shm_mq(1024, 'x', 1, 2)");
		my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
		while (now() < $deadline)
		{
			$waited = $control->query(
				"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $leader"
			)->{stdout};
			last if $waited eq 'Extension';
			pause(0.02);
		}
		$fault_at = now();
		kill 'INT', $leader;
		$result = $session->wait_result;
		1;
	} or note "while the postmaster was stopped: $@";
	kill 'CONT', $postmaster;

	is($waited, 'Extension', "$label: the call waited for its workers");
	is(outcome($result // {}), '57014', "$label: the call was cancelled");
	foreach my $worker (1, 2)
	{
		like(
			$result->{stderr} // '',
			qr/^WARNING:  01000: test_shm_mq_ext worker $worker of 2 did not exit within 5000 ms\nDETAIL:  It had not started, and the postmaster has not yet withdrawn it\.$/m,
			"$label: a WARNING says worker $worker never started");
	}
	my $took = ($result->{error_at} // now()) - ($fault_at // now());
	note sprintf('%s [%s]: the call returned after %.0f ms',
		$label, dsm_choice(), 1000 * $took);
	ok( $took >= $exit_timeout_s && $took < $exit_timeout_s + $exit_slack_s,
		"$label: the call returned after the bounded wait");
	check_no_leftovers($node, $segments_before,
		"$label, once it runs again", settle => 1);
	is( $session->query("SELECT test_shm_mq(1024, 'x', 10, 2)")->{stderr},
		'', "$label, once it runs again: a call succeeds");
}

$session->close;
$control->close;
check_no_leftovers($node, $segments_before, 'end');
$node->stop;
done_testing();
