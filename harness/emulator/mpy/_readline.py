# The friendly REPL's line editor, as an ESP32 has it (shared/readline/readline.c and
# py/repl.c of v1.22-v1.25, with the ESP32's EXTRA_FEATURES set: auto-indent, Emacs keys,
# no word moves, 8 lines of history). Same keys, same bytes on the wire.
# Runs ON the MicroPython unix interpreter.
CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
CTRL_F, CTRL_K, CTRL_N, CTRL_P, CTRL_U = 6, 11, 14, 16, 21
ESC = 27
HISTORY_SIZE = 8  # MICROPY_READLINE_HISTORY_SIZE

_NONE, _ESC, _BRACKET, _BRACKET_DIGIT, _ESC_O = 0, 1, 2, 3, 4
_INDENT_ENABLED, _INDENT_JUST_ADDED = 1, 2
_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")
_WORD_SLOT, _MAX_LINE = 16, 64  # print_completions layout
_IMPORT = "import "
_QUOTES = {"'": (1, 3), '"': (2, 4)}  # a quote character: its single and triple states


def _isident(c):
    return c.isalpha() or c.isdigit() or c == "_"


def _startswith_word(text, head):
    return text.startswith(head) and (len(text) == len(head) or not _isident(text[len(head)]))


def continue_with_input(text):
    # mp_repl_continue_with_input: does the REPL need another line for `text`?
    if not text:
        return False
    compound = text[0] == "@" or any(_startswith_word(text, kw) for kw in _COMPOUND)
    paren = brack = brace = 0
    quote = 0  # 1 ', 2 ", 3 ''', 4 """
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _QUOTES:
            single, triple = _QUOTES[c]
            if quote in (0, triple) and text[i + 1:i + 3] == c + c:
                i += 2
                quote = triple - quote  # a triple quote opens or closes
            elif quote in (0, single):
                quote = single - quote
        elif c == "\\" and i + 1 < n and text[i + 1] in "'\"\\":
            if quote:
                i += 1
        elif not quote:
            if c == "(":
                paren += 1
            elif c == ")":
                paren -= 1
            elif c == "[":
                brack += 1
            elif c == "]":
                brack -= 1
            elif c == "{":
                brace += 1
            elif c == "}":
                brace -= 1
        i += 1
    if quote in (3, 4):
        return True
    if (paren > 0 or brack > 0 or brace > 0) and not quote:
        return True
    if text[-1] == "\\":
        return True
    return compound and text[-1] != "\n"


class Readline:
    def __init__(self, getc, write, write_cooked, namespace, modules):
        self._getc = getc
        self._write = write  # raw bytes/str to the UART (mp_hal_stdout_tx_strn)
        self._cooked = write_cooked  # mp_plat_print (completion lists)
        self._namespace = namespace  # __main__'s globals: where completion starts
        self._modules = modules  # built-in module names, completed after "import "
        self.history = []  # most recent first
        self._indent = 0

    # --- helpers as in readline.c -----------------------------------------------------
    def _back(self, count):
        if count <= 0:
            return
        self._write("\b" * count if count <= 4 else "\x1b[%dD" % count)

    def push_history(self, text):
        if text and (not self.history or self.history[0] != text):
            self.history.insert(0, text)
            del self.history[HISTORY_SIZE:]

    def _auto_indent(self):
        if not self._indent & _INDENT_ENABLED:
            return
        line = self.line
        if len(line) > 1 and line[-1] == "\n":
            i = len(line) - 1
            while i > 0 and line[i - 1] != "\n":
                i -= 1
            j = i
            while j < len(line) and line[j] == " ":
                j += 1
            if i > 0 and j + 1 == len(line):
                # the previous line is all spaces: two such lines end the auto-indent
                k = i - 1
                while k > 0:
                    if line[k - 1] == "\n":
                        return
                    if line[k - 1] != " ":
                        break
                    k -= 1
            n = (j - i) // 4
            if line[-2] == ":":
                n += 1
            while n > 0:
                self.line += "    "
                self._write("    ")
                self.cursor += 4
                self._indent |= _INDENT_JUST_ADDED
                n -= 1

    # --- the editor -------------------------------------------------------------------
    def readline(self, line, prompt):
        # Returns (code, line): code 0 for Enter, else the control char that ended it.
        self.line = line
        self.orig = len(line)
        self._esc = _NONE
        self._esc_digit = ""
        self._hist = -1
        self.cursor = self.orig
        self.prompt = prompt
        self._write(prompt)
        if not line:
            self._indent = _INDENT_ENABLED
        self._auto_indent()
        while True:
            code = self._process(self._getc())
            if code >= 0:
                return code, self.line

    def _process(self, c):
        line = self.line
        last_len = len(line)
        back = forward = 0
        redraw = False
        key = None
        if self._esc == _NONE:
            if CTRL_A <= c <= CTRL_E and len(line) == self.orig:
                return c  # a control character on an empty line
            if c == CTRL_A:
                key = "home"
            elif c == CTRL_B:
                key = "left"
            elif c == CTRL_C:
                return c  # cancel
            elif c == CTRL_D:
                key = "delete"
            elif c == CTRL_E:
                key = "end"
            elif c == CTRL_F:
                key = "right"
            elif c == CTRL_K:
                self.line = line = line[:self.cursor]
                redraw = True
            elif c == CTRL_N:
                key = "down"
            elif c == CTRL_P:
                key = "up"
            elif c == CTRL_U:
                self.line = line = line[:self.orig] + line[self.cursor:]
                back = self.cursor - self.orig
                redraw = True
            elif c == 13:
                self._write("\r\n")
                self.push_history(line[self.orig:])
                return 0
            elif c == ESC:
                self._esc = _ESC
            elif c == 8 or c == 127:
                if self.cursor > self.orig:
                    nspace = 0
                    for i in range(self.orig, self.cursor):
                        if line[i] != " ":
                            nspace = 0
                            break
                        nspace += 1
                    nspace = 1 if nspace < 4 else 4
                    self.line = line = line[:self.cursor - nspace] + line[self.cursor:]
                    back = nspace
                    redraw = True
            elif self._indent & _INDENT_JUST_ADDED and (c == 9 or c == 32):
                # Tab or space right after an auto-indent: auto-indent off; a space also
                # takes 3 of the 4 indent spaces back.
                self._indent = 0
                if c == 32:
                    back = 3
                    self.line = line = line[:-3]
            elif c == 9:
                if line and self.cursor and line[self.cursor - 1] in " \t\n\r\x0b\x0c":
                    completion = "    "  # a tab after whitespace indents
                else:
                    completion = self._complete(line[self.orig:self.cursor])
                if completion is None:  # many matches, listed: draw the line again
                    self._write(self.prompt)
                    self._write(line[self.orig:self.cursor])
                    redraw = True
                elif completion:
                    self.line = line = line[:self.cursor] + completion + line[self.cursor:]
                    redraw = True
                    forward = len(completion)
            elif 32 <= c <= 126:
                self.line = line = line[:self.cursor] + chr(c) + line[self.cursor:]
                redraw = True
                forward = 1
        elif self._esc == _ESC:
            if c == ord("["):
                self._esc = _BRACKET
            elif c == ord("O"):
                self._esc = _ESC_O
            else:
                self._esc = _NONE  # ESC b/f/d (word moves) are not in this firmware
        elif self._esc == _BRACKET:
            if ord("0") <= c <= ord("9"):
                self._esc = _BRACKET_DIGIT
                self._esc_digit = chr(c)
            else:
                self._esc = _NONE
                key = {65: "up", 66: "down", 67: "right", 68: "left", 72: "home",
                       70: "end"}.get(c)
        elif self._esc == _BRACKET_DIGIT:
            if c == ord("~"):
                key = {"1": "home", "7": "home", "4": "end", "8": "end",
                       "3": "delete"}.get(self._esc_digit)
            self._esc = _NONE
        elif self._esc == _ESC_O:
            key = {72: "home", 70: "end"}.get(c)
            self._esc = _NONE
        else:
            self._esc = _NONE

        if key == "home":
            back = self.cursor - self.orig
        elif key == "end":
            forward = len(line) - self.cursor
        elif key == "left":
            if self.cursor > self.orig:
                back = 1
        elif key == "right":
            if self.cursor < len(line):
                forward = 1
        elif key == "delete":
            if self.cursor < len(line):
                self.line = line = line[:self.cursor] + line[self.cursor + 1:]
                redraw = True
        elif key == "up":
            if self._hist + 1 < HISTORY_SIZE and self._hist + 1 < len(self.history):
                self._hist += 1
                self.line = line = line[:self.orig] + self.history[self._hist]
                back = self.cursor - self.orig
                redraw = True
                forward = len(line) - self.orig
        elif key == "down":
            if self._hist >= 0:
                self._hist -= 1
                self.line = line = line[:self.orig] + (
                    self.history[self._hist] if self._hist >= 0 else "")
                back = self.cursor - self.orig
                redraw = True
                forward = len(line) - self.orig

        # redraw the line, efficiently (as readline.c does)
        if back > 0:
            self._back(back)
            self.cursor -= back
        if redraw:
            if len(line) < last_len:
                self._write("\x1b[K")
            self._write(line[self.cursor:])
            self._back(len(line) - (self.cursor + forward))
            self.cursor += forward
        elif forward > 0:
            self._write(line[self.cursor:self.cursor + forward])
            self.cursor += forward
        self._indent &= ~_INDENT_JUST_ADDED
        return -1

    # --- Tab completion (py/repl.c mp_repl_autocomplete) ------------------------------
    def _complete(self, text):
        # "" no match, a suffix to insert, or None after listing several matches.
        start = len(text)
        while start > 0 and (_isident(text[start - 1]) or text[start - 1] == "."):
            start -= 1
        words = text[start:].split(".")
        obj, in_main = None, True
        for word in words[:-1]:
            try:
                obj = self._namespace[word] if in_main else getattr(obj, word)
            except (KeyError, AttributeError):
                return ""
            in_main = False
        partial = words[-1]
        if text.startswith(_IMPORT):
            names = self._modules
        elif in_main:
            names = list(self._namespace)
        else:
            names = dir(obj)
        matches = sorted(set(name for name in names if name.startswith(partial)
                             and (partial or not name.startswith("_"))))
        if not matches:
            if start == 0 and len(words) == 1 and 0 < len(partial) < len(_IMPORT) \
                    and _IMPORT.startswith(partial):
                return _IMPORT[len(partial):]
            return ""
        common = matches[0]
        for name in matches[1:]:
            k = 0
            while k < len(common) and k < len(name) and common[k] == name[k]:
                k += 1
            common = common[:k]
        if len(matches) == 1 or len(common) > len(partial):
            return common[len(partial):]
        out = []
        width = _MAX_LINE  # forces a new line before the first word
        for name in matches:
            gap = (width + _WORD_SLOT - 1) // _WORD_SLOT * _WORD_SLOT - width
            if gap < 2:
                gap += _WORD_SLOT
            if width + gap + len(name) <= _MAX_LINE:
                out.append(" " * gap + name)
                width += gap + len(name)
            else:
                out.append("\n" + name)
                width = len(name)
        self._cooked("".join(out) + "\n")
        return None
