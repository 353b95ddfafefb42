package peers

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
)

// stepLevel returns the level one step more verbose (up) or less, from
// error to trace: the levels SIGUSR1 and SIGUSR2 step through.
func stepLevel(l logrus.Level, up bool) logrus.Level {
	if up {
		return min(l+1, logrus.TraceLevel)
	}
	return max(l-1, logrus.ErrorLevel)
}

// logOutput is the log's destination: stderr, or a file that can be
// reopened after logrotate moved it.
type logOutput struct {
	path   string
	logger *logrus.Logger

	mu   sync.Mutex
	file *os.File
}

// newLogger returns a logger writing one text line per event to path
// (appending) or to stderr when path is empty.
func newLogger(path string, level logrus.Level) (*logrus.Logger, *logOutput, error) {
	logger := logrus.New()
	logger.SetLevel(level)
	logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true, TimestampFormat: "2006-01-02T15:04:05.000000Z07:00"})
	out := &logOutput{path: path, logger: logger}
	if path == "" {
		logger.SetOutput(os.Stderr)
		return logger, out, nil
	}
	if err := out.reopen(); err != nil {
		return nil, nil, err
	}
	return logger, out, nil
}

// reopen opens the log file again and switches the logger to it.
func (o *logOutput) reopen() error {
	if o.path == "" {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	// SetOutput takes the logger's lock, so no event is half written to
	// the old file when it is closed.
	o.logger.SetOutput(f)
	if o.file != nil {
		o.file.Close()
	}
	o.file = f
	return nil
}

// close ends logging to the file.
func (o *logOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.logger.SetOutput(io.Discard)
		o.file.Close()
		o.file = nil
	}
}
