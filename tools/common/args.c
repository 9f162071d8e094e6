/*
 * args.c - the command line as typed, and the refusal of BACKING arguments
 * that are ekmfs mountpoints (tools/common/tool.h).
 *
 * A first-time admin gives the mountpoint where the backing directory is
 * wanted (ekmfs-admin verify /mnt/vault): the tools would then call it "not
 * an ekmfs volume" and suggest init, which is harmful advice. The mount
 * table names the backing directory of every ekmfs mount, so the answer can
 * be the exact command to run instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/mounts.h"
#include "tool.h"

static const char *prog = "ekmfs";
static char **saved_argv;       /* the argv array as typed (strings shared) */
static int saved_argc;

void tool_init(const char *name, int argc, char **argv)
{
	prog = name;
	saved_argv = malloc(sizeof(*saved_argv) * (size_t)(argc + 1));
	if (!saved_argv)
		return;         /* the suggestion is then the bare command */
	memcpy(saved_argv, argv, sizeof(*saved_argv) * (size_t)(argc + 1));
	saved_argc = argc;
}

const char *tool_prog(void)
{
	return prog;
}

/* s as one shell word. */
static void put_word(FILE *f, const char *s)
{
	if (s[0] && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		       "0123456789_./:=,+-@%") == strlen(s)) {
		fputs(s, f);
		return;
	}
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
}

/* The command line as typed, with arg replaced by with. */
static void put_command(FILE *f, const char *arg, const char *with)
{
	fputs(prog, f);
	for (int i = 1; i < saved_argc; i++) {
		fputc(' ', f);
		put_word(f, saved_argv[i] == arg ? with : saved_argv[i]);
	}
	if (!saved_argv) {
		fputc(' ', f);
		put_word(f, with);
	}
}

/* The explanation (without "PROG: ") when arg is on an ekmfs mount. */
static void explain(FILE *f, const char *arg, enum tool_path_kind kind,
		    const struct ekmfs_mount *m, const char *inside)
{
	char with[2 * PATH_MAX];

	if (kind == TOOL_NEW_BACKING) {
		/* Files created through a mount are that volume's files. */
		if (inside[0])
			fprintf(f, "%s is inside the ekmfs mount %s (of the volume %s)", arg,
				m->point, m->backing);
		else
			fprintf(f, "%s is an ekmfs mountpoint (of the volume %s)", arg,
				m->backing);
		fprintf(f, "; a new volume needs a directory that is not on an ekmfs mount");
		return;
	}
	if (kind == TOOL_BACKING || !inside[0]) {
		snprintf(with, sizeof(with), "%s", m->backing);
		if (!inside[0])
			fprintf(f, "%s is an ekmfs mountpoint; give its backing directory: ", arg);
		else
			fprintf(f, "%s is inside the ekmfs mount %s; give the volume's backing "
				"directory: ", arg, m->point);
	} else {
		snprintf(with, sizeof(with), "%s%s", m->backing, inside);
		fprintf(f, "%s is inside the ekmfs mount %s; give the path in its backing "
			"directory: ", arg, m->point);
	}
	put_command(f, arg, with);
}

char *tool_mount_path_problem(const char *arg, enum tool_path_kind kind)
{
	char inside[PATH_MAX], *text = NULL;
	struct ekmfs_mount *m = malloc(sizeof(*m));
	size_t len;
	FILE *f;

	if (!m)
		return NULL;
	if (ekmfs_mount_of_path(arg, m, inside, sizeof(inside)) == 1) {
		f = open_memstream(&text, &len);
		if (f) {
			explain(f, arg, kind, m, inside);
			if (fclose(f) != 0) {
				free(text);
				text = NULL;
			}
		}
	}
	free(m);
	return text;
}

bool tool_refuse_mount_path(const char *arg, enum tool_path_kind kind)
{
	char *why = tool_mount_path_problem(arg, kind);

	if (!why)
		return false;
	fprintf(stderr, "%s: %s\n", prog, why);
	free(why);
	return true;
}
