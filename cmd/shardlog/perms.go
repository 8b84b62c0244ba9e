package main

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/writer"
)

// perms returns the mode and group of what shardlog creates in cfg.Dir:
// file_mode, dir_mode and file_group.
func perms(cfg config.Config) (writer.Perms, error) {
	gid, ok, err := cfg.GroupID()
	if err != nil {
		return writer.Perms{}, err
	}
	return writer.Perms{File: fs.FileMode(cfg.FileMode), Dir: fs.FileMode(cfg.DirMode), Group: gid, SetGroup: ok}, nil
}

// permsHint names file_group in err if err is a refused chown to it: the
// process is neither root nor a member of the group.
func permsHint(err error, cfg config.Config) error {
	if cfg.FileGroup != "" && errors.Is(err, unix.EPERM) {
		return fmt.Errorf("file_group: %q: %w: shardlog must run as root or as a member of the group "+
			"(in the systemd unit: SupplementaryGroups=%s)", cfg.FileGroup, err, cfg.FileGroup)
	}
	return err
}
