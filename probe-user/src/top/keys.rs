//! What each key does, on each screen of `hupwatch top`.
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Mode, SortKey};

/// What the loop must do after a key, beyond the state the key changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Nothing,
    Quit,
    /// End this process (the user said yes).
    End(u32),
}

/// The keys, for the footer.
pub const HELP: &str = "m memory  g growth  c cpu  a age  t trees  / filter  \u{2191}\u{2193} select  Enter details  k end  q quit";

pub fn handle(app: &mut App, key: KeyEvent) -> Command {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Command::Quit;
    }
    match app.mode.clone() {
        Mode::Filter => filter(app, key),
        Mode::Confirm { pid, comm, back } => {
            app.mode = *back;
            if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                return Command::End(pid);
            }
            app.say(format!("not ended: {pid} {comm}"));
            Command::Nothing
        }
        Mode::Detail { pid, scroll } => match key.code {
            KeyCode::Char('q') => Command::Quit,
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => {
                app.mode = Mode::List;
                Command::Nothing
            }
            KeyCode::Up => {
                app.mode = Mode::Detail {
                    pid,
                    scroll: scroll.saturating_sub(1),
                };
                Command::Nothing
            }
            KeyCode::Down => {
                app.mode = Mode::Detail {
                    pid,
                    scroll: scroll.saturating_add(1),
                };
                Command::Nothing
            }
            KeyCode::PageUp => {
                app.mode = Mode::Detail {
                    pid,
                    scroll: scroll.saturating_sub(10),
                };
                Command::Nothing
            }
            KeyCode::PageDown => {
                app.mode = Mode::Detail {
                    pid,
                    scroll: scroll.saturating_add(10),
                };
                Command::Nothing
            }
            KeyCode::Char('k') => ask_to_end(app, pid),
            _ => Command::Nothing,
        },
        Mode::List => list(app, key),
    }
}

fn list(app: &mut App, key: KeyEvent) -> Command {
    match key.code {
        KeyCode::Char('q') => return Command::Quit,
        KeyCode::Char('m') => app.set_sort(SortKey::Memory),
        KeyCode::Char('g') => app.set_sort(SortKey::Growth),
        KeyCode::Char('c') => app.set_sort(SortKey::Cpu),
        KeyCode::Char('a') => app.set_sort(SortKey::Age),
        KeyCode::Char('t') => app.toggle_trees(),
        KeyCode::Char('/') => {
            app.mode = Mode::Filter;
            app.status = None;
        }
        KeyCode::Esc => {
            app.set_filter(String::new());
            app.status = None;
        }
        KeyCode::Up => app.move_selection(-1),
        KeyCode::Down => app.move_selection(1),
        KeyCode::PageUp => app.move_selection(-10),
        KeyCode::PageDown => app.move_selection(10),
        KeyCode::Home => app.move_selection(isize::MIN),
        KeyCode::End => app.move_selection(isize::MAX),
        KeyCode::Enter => {
            if let Some(pid) = app.selected {
                app.mode = Mode::Detail { pid, scroll: 0 };
            }
        }
        KeyCode::Char('k') => {
            if let Some(pid) = app.selected {
                return ask_to_end(app, pid);
            }
        }
        _ => {}
    }
    Command::Nothing
}

fn filter(app: &mut App, key: KeyEvent) -> Command {
    match key.code {
        KeyCode::Enter => app.mode = Mode::List,
        KeyCode::Esc => {
            app.mode = Mode::List;
            app.set_filter(String::new());
        }
        KeyCode::Backspace => {
            let mut text = app.filter.clone();
            text.pop();
            app.set_filter(text);
        }
        KeyCode::Char(c) if !c.is_control() => {
            let mut text = app.filter.clone();
            text.push(c);
            app.set_filter(text);
        }
        _ => {}
    }
    Command::Nothing
}

fn ask_to_end(app: &mut App, pid: u32) -> Command {
    let Some(comm) = app.process(pid).map(|p| p.comm.clone()) else {
        app.say(format!("{pid} is gone"));
        return Command::Nothing;
    };
    if app.ending.contains(&pid) {
        app.say(format!("already ending {pid}"));
        return Command::Nothing;
    }
    let back = Box::new(app.mode.clone());
    app.mode = Mode::Confirm { pid, comm, back };
    Command::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        tracker::{ProcessView, SessionsView},
        verdict::VerdictKind,
    };

    fn press(app: &mut App, code: KeyCode) -> Command {
        handle(app, KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn app() -> App {
        let mut app = App::new("test".into());
        app.update(Ok(SessionsView {
            time_ns: 1,
            ..SessionsView::with_sessions(vec![
                ProcessView::example(10, 300, VerdictKind::Orphaned),
                ProcessView::example(11, 200, VerdictKind::Detached),
            ])
        }));
        app
    }

    #[test]
    fn ending_asks_first_and_only_yes_ends() {
        let mut app = app();
        press(&mut app, KeyCode::Down);
        assert_eq!(press(&mut app, KeyCode::Char('k')), Command::Nothing);
        assert!(matches!(app.mode, Mode::Confirm { pid: 11, .. }));
        assert_eq!(press(&mut app, KeyCode::Char('n')), Command::Nothing);
        assert_eq!(app.mode, Mode::List);
        press(&mut app, KeyCode::Char('k'));
        assert_eq!(press(&mut app, KeyCode::Char('y')), Command::End(11));
    }

    #[test]
    fn typing_a_filter_takes_every_character_and_esc_clears_it() {
        let mut app = app();
        press(&mut app, KeyCode::Char('/'));
        for c in "p1q".chars() {
            assert_eq!(press(&mut app, KeyCode::Char(c)), Command::Nothing);
        }
        assert_eq!(app.filter, "p1q");
        press(&mut app, KeyCode::Backspace);
        press(&mut app, KeyCode::Char('1'));
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.mode, Mode::List);
        assert_eq!(app.rows().len(), 1);
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.filter, "");
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(handle(&mut app, ctrl_c), Command::Quit);
    }

    #[test]
    fn enter_opens_the_selected_process_and_esc_goes_back() {
        let mut app = app();
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.mode, Mode::Detail { pid: 10, scroll: 0 });
        press(&mut app, KeyCode::Down);
        assert_eq!(app.mode, Mode::Detail { pid: 10, scroll: 1 });
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.mode, Mode::List);
        press(&mut app, KeyCode::Char('g'));
        assert_eq!(app.sort, SortKey::Growth);
    }
}
