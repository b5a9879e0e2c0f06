/*
 * hupwatch's DTrace script for macOS. hupwatch embeds this file, fills in the four
 * placeholders written between at-signs below and runs it as `dtrace -q -s FILE`; its
 * output is format version 1, documented in FORMAT.md beside this file, and parsed by
 * probe-user/src/source/dtrace/.
 *
 *   TRACE_ALL  1 to trace every process (the tracked[] lookups are skipped), or 0
 *   SELF       hupwatch's own pid: never traced
 *   MATCH      a predicate on execname that makes an exec tracked (0 when tracing all)
 *   SEEDS      statements run at BEGIN: `tracked[PID] = 1;` for each process that
 *              already matched (or descends from one) when hupwatch started
 *
 * Strings are printed as LENGTH:BYTES, so a name with spaces, quotes or newlines cannot
 * break a record.
 */

#pragma D option quiet
#pragma D option switchrate=10hz
#pragma D option bufsize=8m
#pragma D option strsize=1024

inline int TRACE_ALL = @TRACE_ALL@;
inline int SELF = @SELF@;
/* p_lflag bit of a process that is exiting: signals to it are discarded, not ignored. */
inline int P_LEXIT = 0x00004000;
inline int TIOCSCTTY = 0x20007461;
inline int TIOCNOTTY = 0x20007471;

int tracked[int];

BEGIN
{
	@SEEDS@
	printf("hupwatch-dtrace 1\n");
}

/* Tracking: an exec that matches starts it, fork inherits it, exit ends it. */
proc:::exec-success
/pid != SELF && pid != $pid && !tracked[pid] && (@MATCH@)/
{
	tracked[pid] = 1;
}

proc:::exec-success
/pid != SELF && pid != $pid && (TRACE_ALL || tracked[pid])/
{
	this->hup = (curproc->p_sigignore & 1) ? 1 : 0;
	printf("exec %d %d %d %d %d %d %d %d %d:%s\n", walltimestamp, pid,
	    curpsinfo->pr_ppid, curpsinfo->pr_sid, curpsinfo->pr_ttydev,
	    curpsinfo->pr_start_tv.tv_sec, curpsinfo->pr_start_tv.tv_usec, this->hup,
	    strlen(execname), execname);
}

proc:::create
/pid != SELF && pid != $pid && (TRACE_ALL || tracked[pid])/
{
	tracked[args[0]->pr_pid] = TRACE_ALL ? 0 : 1;
	printf("fork %d %d %d %d:%s\n", walltimestamp, args[0]->pr_pid, pid,
	    strlen(execname), execname);
}

/* proc:::exit carries only a CLD_* reason; proc:::exited has the wait status. */
proc:::exited
/TRACE_ALL || tracked[args[0]->pr_pid]/
{
	printf("exit %d %d %d %d %d:%s\n", walltimestamp, args[0]->pr_pid,
	    args[0]->pr_ppid, args[1], strlen(args[0]->pr_fname), args[0]->pr_fname);
	tracked[args[0]->pr_pid] = 0;
}

/* Signals: who sent what to whom. Inside kill(2) it is a user's; otherwise the kernel's
 * (a terminal hanging up, a child exiting). */
syscall::kill:entry, syscall::killpg:entry
{
	self->in_kill = 1;
}

syscall::kill:return, syscall::killpg:return
{
	self->in_kill = 0;
}

proc:::signal-send
/args[1]->pr_pid != SELF && (TRACE_ALL || tracked[args[1]->pr_pid])/
{
	printf("signal %d %d %d %d %d %d:%s %d:%s\n", walltimestamp, args[1]->pr_pid,
	    args[2], pid, self->in_kill ? 0 : 1, strlen(args[1]->pr_fname),
	    args[1]->pr_fname, strlen(execname), execname);
}

/* Discarded because the target ignores it, unless the target is already exiting. */
proc:::signal-discard
/args[1]->pr_pid != SELF && (TRACE_ALL || tracked[args[1]->pr_pid]) &&
 !(((struct proc *)args[1]->pr_addr)->p_lflag & P_LEXIT)/
{
	printf("discard %d %d %d %d:%s\n", walltimestamp, args[1]->pr_pid, args[2],
	    strlen(args[1]->pr_fname), args[1]->pr_fname);
}

proc:::signal-handle
/pid != SELF && (TRACE_ALL || tracked[pid])/
{
	printf("handle %d %d %d %d:%s\n", walltimestamp, pid, args[0], strlen(execname),
	    execname);
}

/* setsid(2): the session and terminal it leaves, and the result. */
syscall::setsid:entry
/pid != SELF && (TRACE_ALL || tracked[pid])/
{
	self->old_sid = curpsinfo->pr_sid;
	self->old_tty = curpsinfo->pr_ttydev;
	self->in_setsid = 1;
}

syscall::setsid:return
/self->in_setsid/
{
	printf("setsid %d %d %d %d %d %d %d:%s\n", walltimestamp, pid, (int)arg0,
	    (int)arg0 < 0 ? errno : 0, self->old_sid, self->old_tty, strlen(execname),
	    execname);
	self->in_setsid = 0;
}

/* Taking or giving up a controlling terminal. */
syscall::ioctl:entry
/pid != SELF && (TRACE_ALL || tracked[pid]) && (arg1 == TIOCSCTTY || arg1 == TIOCNOTTY)/
{
	printf("tty %d %d %s %d %d %d %d:%s\n", walltimestamp, pid,
	    arg1 == TIOCSCTTY ? "attach" : "detach", curpsinfo->pr_sid, (int)arg0,
	    curpsinfo->pr_ttydev, strlen(execname), execname);
}

/* What SIGHUP, SIGINT and SIGTERM will do: the handler is the first word of the action. */
syscall::sigaction:entry
/pid != SELF && (TRACE_ALL || tracked[pid]) && (arg0 == 1 || arg0 == 2 || arg0 == 15) &&
 arg1 != 0/
{
	this->handler = *(uint64_t *)copyin(arg1, sizeof(uint64_t));
	printf("sigaction %d %d %d %d %d:%s\n", walltimestamp, pid, (int)arg0,
	    this->handler == 0 ? 0 : this->handler == 1 ? 1 : 2, strlen(execname),
	    execname);
}
